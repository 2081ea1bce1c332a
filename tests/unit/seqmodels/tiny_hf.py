"""A tiny ESM-2-shaped model, built and saved by the tests themselves (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

# ESM-2's vocabulary, in its order.
ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO", ".", "-", "<null_1>", "<mask>"]


def build_tiny_esm(folder: Path, *, masked_lm: bool = True, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide ESM (random weights) and its tokenizer as ``save_pretrained`` does."""
    import torch
    from transformers import EsmConfig, EsmForMaskedLM, EsmModel, EsmTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n", encoding="utf-8")
    tokenizer = EsmTokenizer(vocab_file=str(folder / "vocab.txt"))
    config = EsmConfig(
        vocab_size=len(ESM_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        position_embedding_type="absolute",
        token_dropout=False,
    )
    torch.manual_seed(seed)
    model = (EsmForMaskedLM if masked_lm else EsmModel)(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
