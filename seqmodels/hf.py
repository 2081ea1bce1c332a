"""The hf adapter: serves any Hugging Face model directory already on disk (ESM-2, ProtBERT, DNABERT...).

    python -m seqmodels.hf --model-dir /models/esm2_t6_8M_UR50D --capability protein-embedding --port 0

The directory must hold a config, weights and a tokenizer (as ``save_pretrained`` writes them);
nothing is downloaded (``local_files_only``, ``HF_HUB_OFFLINE=1``). A masked-LM checkpoint
(``*ForMaskedLM``) answers ``embedding`` and ``pseudo_log_likelihood``; any other encoder
answers ``embedding`` only. Capabilities are configured (``--capability``, repeatable), so
the same adapter serves a protein model as ``protein-embedding`` or a DNA model as
``dna-embedding``; a capability ending in ``-embedding`` or ``-likelihood`` is accepted as
the matching task type. Custom modelling code (DNABERT-2) runs only with
``--trust-remote-code``, because it executes Python shipped in the directory.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from seqmodels.cli import run_sequence_worker, seq_settings
from seqmodels.lm_worker import EMBEDDING, PLL, MaskedLMWorker
from seqmodels.sequences import ALPHABETS, Alphabet
from seqmodels.settings import SeqSettings
from services.common.cli import comma_list
from services.common.settings import WorkerSettings

log = logging.getLogger(__name__)

_CAPABILITY_RE = re.compile(r"^[a-z0-9-]{1,63}$")
DEFAULT_CAPABILITIES = ("protein-embedding",)
_SPECIAL_POSITIONS = 2  # CLS/BOS and SEP/EOS around one sequence


class HFModel(MaskedLMWorker):
    """A local Hugging Face checkpoint behind the sequence-worker API."""

    service_name = "hf"

    def __init__(
        self,
        model_dir: str | Path,
        settings: SeqSettings | None = None,
        *,
        capabilities: list[str] | None = None,
        alphabet: str = "protein",
        service_name: str = "hf",
        device: str = "cpu",
        space_separated: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        self.service_name = service_name
        self.model_dir = Path(model_dir)
        config = _read_config(self.model_dir)
        self.has_lm_head = any(a.endswith("ForMaskedLM") for a in config.get("architectures") or [])
        self.tasks = (EMBEDDING, PLL) if self.has_lm_head else (EMBEDDING,)
        caps = list(capabilities or ["protein-embedding"])
        self.task_aliases = _aliases(caps, self.tasks)
        super().__init__(settings)
        self.capabilities = caps
        self.models = [config.get("_name_or_path") or self.model_dir.name]
        self.version = str(config.get("transformers_version", "0"))
        self._alphabet = ALPHABETS[alphabet]
        self._position_limit = _position_limit(config)
        self.device = device
        self.space_separated = space_separated
        self.trust_remote_code = trust_remote_code
        self.letter_tokens = False

    @property
    def kind(self) -> str:
        return "hf"

    def alphabet(self, task_type: str) -> Alphabet:
        return self._alphabet

    def max_length(self, task_type: str) -> int:
        # Characters bound tokens from above, so a length within the positions always fits.
        return min(self.settings.max_length, self._position_limit)

    def load_model(self) -> None:
        from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

        from seqmodels.lm import MaskedLMRunner, set_torch_threads

        set_torch_threads(self.settings.torch_threads)
        common = {"local_files_only": True, "trust_remote_code": self.trust_remote_code}
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir, **common)
        loader = AutoModelForMaskedLM if self.has_lm_head else AutoModel
        model = loader.from_pretrained(self.model_dir, **common)
        self.runner = MaskedLMRunner(
            model, tokenizer, device=self.device, space_separated=self.space_separated, has_lm_head=self.has_lm_head
        )
        log.info("%s loaded from %s (%s) on %s", self.models[0], self.model_dir, loader.__name__, self.device)

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["model_dir"] = str(self.model_dir)
        return info


def _read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def _position_limit(config: dict[str, Any]) -> int:
    """Letters that fit the model's learned positions (ESM reserves a padding offset too)."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return 1 << 30  # relative or ALiBi positions: only the setting limits
    offset = 2 if config.get("model_type") in {"esm", "roberta", "xlm-roberta"} else 0
    return max(1, positions - _SPECIAL_POSITIONS - offset)


def _aliases(capabilities: list[str], tasks: tuple[str, ...]) -> dict[str, str]:
    """``protein-embedding`` → embedding, ``dna-likelihood`` → pseudo_log_likelihood (when served)."""
    aliases = {}
    for cap in capabilities:
        if cap.endswith("-embedding"):
            aliases[cap] = EMBEDDING
        elif cap.endswith("-likelihood") and PLL in tasks:
            aliases[cap] = PLL
    return aliases


def _capabilities(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    capabilities = comma_list(ctx, param, values)
    for value in capabilities:
        if not _CAPABILITY_RE.match(value):
            raise click.BadParameter(f"capability must match [a-z0-9-]{{1,63}}, got {value!r}", ctx, param)
    return capabilities


HF_OPTIONS = [
    click.Option(
        ["--model-dir"],
        type=click.Path(path_type=Path),
        envvar="SEQMODELS_HF_MODEL_DIR",
        show_envvar=True,
        help="model directory on disk",
    ),
    click.Option(
        ["--capability", "capabilities"],
        multiple=True,
        default=DEFAULT_CAPABILITIES,
        envvar="SEQMODELS_HF_CAPABILITIES",
        show_envvar=True,
        callback=_capabilities,
        show_default=True,
        help="capability to register; repeatable, comma-separated",
    ),
    click.Option(
        ["--alphabet"],
        type=click.Choice(sorted(ALPHABETS)),
        default="protein",
        envvar="SEQMODELS_HF_ALPHABET",
        show_envvar=True,
        show_default=True,
        help="input letters",
    ),
    click.Option(["--name"], default="hf", show_default=True, help="registry service name"),
    click.Option(
        ["--space-separated"],
        is_flag=True,
        help="join letters with spaces before tokenising (ProtBERT-style vocabularies)",
    ),
    click.Option(["--trust-remote-code"], is_flag=True, help="allow modelling code shipped in the model directory"),
]


def make_hf_model(args: SimpleNamespace, _settings: WorkerSettings) -> HFModel:
    if args.model_dir is None:
        raise SystemExit("hf: pass --model-dir or set SEQMODELS_HF_MODEL_DIR")
    settings = seq_settings(args)
    try:
        return HFModel(
            args.model_dir,
            settings,
            capabilities=list(args.capabilities or DEFAULT_CAPABILITIES),
            alphabet=args.alphabet,
            service_name=args.name,
            device=args.device,
            space_separated=args.space_separated,
            trust_remote_code=args.trust_remote_code,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"hf: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    return run_sequence_worker(
        make_hf_model,
        prog="python -m seqmodels.hf",
        description="Hugging Face adapter: serves a model directory on disk (embeddings, pseudo-log-likelihood).",
        options=HF_OPTIONS,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
