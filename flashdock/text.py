"""Text that other parties wrote (worker names, metadata, model cards) shown as text, never as live markup.

Anyone who may register a worker chooses these strings. Streamlit's Markdown turns ``[x](url)``,
bare URLs and images into live links and remote fetches, so third-party strings go into code
spans, tables or ``st.text``; a model card keeps its headings and lists but loses links, images
and raw HTML (:func:`card_html`).
"""

from __future__ import annotations

from markdown_it import MarkdownIt

MAX_CARD_CHARS = 50_000


def code_span(value: object, limit: int = 200) -> str:
    """``value`` as one Markdown code span: no link, image or emphasis can form inside it."""
    text = " ".join(str(value).replace("`", "'").split())[:limit]
    return f"`{text}`" if text else "` `"


def _card_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    rules = md.renderer.rules

    def nothing(*_args: object) -> str:
        return ""

    def image_alt(tokens, idx, *_args: object) -> str:  # type: ignore[no-untyped-def]
        return md.renderer.renderInline(tokens[idx].children or [], md.options, {})

    rules["link_open"] = nothing  # the link text stays, the link goes
    rules["link_close"] = nothing
    rules["image"] = image_alt  # an image becomes its alt text: nothing is fetched
    return md


_PARSER = _card_parser()


def card_html(markdown: str) -> str:
    """A model card rendered with its formatting, without links, images or HTML (raw HTML is shown as text)."""
    return _PARSER.render(markdown[:MAX_CARD_CHARS])
