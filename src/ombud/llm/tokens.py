"""Offline token estimates, for budgets and token limits before a call and for upstreams that
report no usage.

No tokenizer files are loaded (nothing to download, nothing per provider): text is split by one
regular expression into the pieces byte-pair encoders tend to keep apart, and each piece is
priced by a rule of thumb:

* a word of up to six letters is one token (common words are single tokens in every modern
  vocabulary); a longer word costs one token per four characters, rounded up;
* numbers count one token per group of up to three digits (how GPT-4-era encoders split them);
* every CJK, kana or Hangul character is one token (those vocabularies spend one to two tokens
  per character; a ~4-characters-per-token rule counts a quarter of a token);
* every other visible character (punctuation, operators, brackets) is one token;
* a line break with the indentation that follows it, or a run of spaces, is one token.

Compared with the usual ~4-characters-per-token rule this stays close on English prose (both
land near a word per token) and is far closer on the text that rule gets wrong: CJK (the rule
undercounts about fourfold), source code and JSON (punctuation-dense; the rule undercounts
roughly by half) and digit strings. It leans towards overcounting, which is the safe side for a
budget check. When an upstream reports usage, that is what gets charged; the estimate only
stands in when it does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ombud.llm.types import ChatRequest

# Order matters: CJK characters are also letters (\w), so they are matched one at a time first.
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]"
_PIECES = re.compile(
    _CJK + r"|[^\W\d_]+|\d{1,3}|[^\s\w]|_|[ \t]*\n[ \t\n]*|[ \t]{2,}",
    re.UNICODE,
)

_SHORT_WORD = 6
"""Letters a word may have and still count as one token."""

MESSAGE_OVERHEAD = 4
"""Tokens a chat format adds per message (role and separators; OpenAI documents 3 to 4)."""

REPLY_PRIMING = 3
"""Tokens that start the assistant's reply, counted once per request."""


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` is likely to cost; 0 for the empty string, and never less for more text."""
    if not text:
        return 0
    total = 0
    for piece in _PIECES.findall(text):
        size = len(piece)
        total += 1 if size <= _SHORT_WORD else (size + 3) // 4
    return total


def _sum(texts: Iterable[str]) -> int:
    return sum(estimate_tokens(t) for t in texts)


def estimate_request_tokens(request: ChatRequest) -> int:
    """Input tokens of a chat request: every text, plus the chat format's per-message overhead."""
    messages = len(request.messages) + (1 if request.system else 0)
    return _sum(request.texts()) + MESSAGE_OVERHEAD * messages + REPLY_PRIMING


def estimate_embedding_tokens(inputs: list[str]) -> int:
    """Input tokens of an embedding request (embeddings have no per-input overhead)."""
    return _sum(inputs)
