"""Weighted signatures: the phrasings of an injection, compiled once.

A signature is a regular expression with a reason code and a weight (how strongly one match
indicates an injection on its own, 0..1). Most are built from word classes with a bounded gap
between them ("ignore" … up to three words … "previous" … "instructions"), so paraphrases match
and not only the exact phrase. Gaps never cross a sentence end and every repetition is bounded,
with disjoint classes on either side, so matching stays linear in the input.

Most signatures start with a literal phrase ("ignore", "you are now"): their ``starts`` name the
first word of each, and the expression is only tried where one of those words begins, never
scanned across the whole text. The others name ``anchors``: literals of which one must occur for
the expression to be searched for at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ombud.guards._normalize import strip_marks


@dataclass(frozen=True, slots=True)
class Signature:
    """One compiled signature.

    Attributes:
        code: The stable reason code reported when it matches.
        weight: Evidence strength of one match, 0..1.
        pattern: Matched against the normalized (lower-case) views.
        anchors: Literals of which one must occur for ``pattern`` to be searched for.
        starts: First words (or word stems) at which ``pattern`` is tried with ``match``; when
            set, ``anchors`` is not used and the pattern is never searched for.
    """

    code: str
    weight: float
    pattern: re.Pattern[str]
    anchors: tuple[str, ...] = ()
    starts: tuple[str, ...] = ()


def alt(items: Iterable[str]) -> str:
    """A non-capturing alternation of literal phrases; a space matches any run of spaces."""
    return "(?:" + "|".join(re.escape(i).replace(r"\ ", r"\s+") for i in items) + ")"


def gap(words: int) -> str:
    """Up to ``words`` intervening words, within one sentence."""
    return rf"(?:[^\w.!?\n]+\w+){{0,{words}}}?[^\w.!?\n]+"


def sig(code: str, weight: float, source: str, anchors: Iterable[str] = ()) -> Signature:
    """Compile a signature; sources and anchors get the same mark stripping as the text."""
    return Signature(
        code, weight, re.compile(strip_marks(source)), tuple(strip_marks(a) for a in anchors)
    )


def lead(code: str, weight: float, first: Iterable[str], rest: str) -> Signature:
    """A signature that starts with one of the literal phrases ``first``."""
    items = tuple(strip_marks(i) for i in first)
    source = strip_marks(r"\b" + alt(items) + (rest or r"\b"))
    starts = tuple(dict.fromkeys(i.split(" ")[0] for i in items))
    return Signature(code, weight, re.compile(source), starts=starts)


def stem(code: str, weight: float, first: Iterable[str], rest: str) -> Signature:
    """Like :func:`lead`, with any word ending after the phrase ("ignor" → "ignoring")."""
    return lead(code, weight, first, r"\w*" + rest)


OVERRIDE_VERBS = (
    "ignore", "ignoring", "disregard", "forget", "override", "bypass", "set aside", "put aside",
    "throw out", "throw away", "abandon", "discard", "dismiss", "neglect", "pay no attention to",
    "do not follow", "don't follow", "stop following", "no longer follow", "stop obeying",
    "do not obey", "don't obey", "do not adhere to", "don't adhere to", "never mind", "nevermind",
    "let go of", "supersede", "circumvent", "ditch", "scrap", "wipe", "erase", "overlook",
    "skip", "revoke",
)  # fmt: skip
QUALIFIERS = (
    "previous", "prior", "above", "earlier", "preceding", "foregoing", "original", "initial",
    "existing", "old", "former", "all", "any", "every", "your", "these", "those", "default",
    "current", "whatever", "system", "given", "hidden", "usual", "operator's", "developer's",
    "developers'", "company's", "creators'", "makers'",
)  # fmt: skip
RULE_NOUNS = (
    "instructions", "instruction", "directions", "directives", "directive", "rules", "rulebook",
    "guidelines", "guideline", "guidance", "prompt", "prompts", "system prompt", "system message",
    "programming", "constraints", "restrictions", "guardrails", "policies", "policy",
    "content policy", "filters", "briefing", "setup", "configuration", "context", "training",
    "limitations", "safety rules", "safety guidelines", "safeguards", "ethics", "commands",
    "preamble", "orders",
)  # fmt: skip
_TOLD = (
    "you were given", "you've been given", "you have been given", "you got", "you received",
    "you were told", "given to you", "set by", "from your", "provided", "above", "before",
    "earlier", "previously", "at the start", "at the top", "at the beginning", "you were set up",
    "you were configured",
)  # fmt: skip
_VOIDED = (
    r"(?:no\s+longer|not|don't|do\s+not|doesn't)\s+(?:apply|applies|matter|matters|valid|relevant"
    r"|in\s+effect|binding|exist)"
    r"|(?:is|are|was|were|has\s+been|have\s+been|now)\s+(?:now\s+)?(?:void|null|obsolete|cancell?ed"
    r"|revoked|outdated|expired|lifted|suspended|removed|disabled|switched\s+off|turned\s+off"
    r"|deactivated|reset|overridden|superseded|irrelevant|a\s+test|a\s+mistake)"
    r"|have\s+expired"
)

_EXFIL_VERBS = (
    "reveal", "print", "show", "display", "repeat", "output", "tell", "give", "share", "leak",
    "dump", "echo", "recite", "reproduce", "quote", "copy", "paste", "write out", "write down",
    "spell out", "list", "expose", "disclose", "translate", "produce", "return", "provide",
    "summarize", "what is", "what are", "what were", "what was", "what does", "read back",
    "type out", "state", "send me", "encode",
)  # fmt: skip
_COPY_VERBS = (
    "repeat", "print", "output", "copy", "echo", "reproduce", "recite", "paste", "dump", "quote",
    "write out", "spell out", "type out", "produce",
)  # fmt: skip
_HIDDEN = (
    r"(?:your|ur|the|this|its)\s+(?:full\s+|entire\s+|exact\s+|complete\s+)?(?:system|initial"
    r"|original|hidden|secret|internal|developer|setup|configuration|initialization|underlying"
    r"|confidential|starting|opening|first)[\s\-]?(?:prompt|message|instructions|preamble|text"
    r"|rules|directives|guidelines|configuration)|\bpre-?prompt"
    r"|your\s+(?:instructions|prompt|directives|configuration|programming|briefing"
    r"|system\s+\w+|context(?:\s+window)?)"
)
_STAFF = (
    r"(?:your|the)\s+(?:creators?|developers?|operators?|makers?|company|admins?|owners?"
    r"|programmers?)"
)
_GIVEN = (
    r"(?:that\s+)?(?:you\s+were\s+(?:given|told)|you\s+received|you've\s+been\s+given"
    r"|you\s+were\s+initiali[sz]ed\s+with|given\s+to\s+you|"
    + _STAFF
    + r"\s+(?:wrote|gave|set|provided|told))"
)
_ABOVE = (
    r"(?:text|words|content|contents|everything|all|message|messages|instructions)"
    + gap(3)
    + r"(?:above|before\s+(?:this|my|mine|the|i)|(?:at|from)\s+the\s+(?:start|beginning|top))"
    r"|(?:beginning|start)\s+of\s+(?:this|the)\s+(?:conversation|chat|context)|context\s+window"
)

_HARM = (
    r"(?:bomb|napalm|meth\w*|explosive\w*|weapon\w*|malware|virus|ransomware|hack\w*|steal\w*"
    r"|poison\w*|drugs?|pick\s+a\s+lock|counterfeit)\b"
)
_SEND_VERBS = (
    "send", "forward", "email", "e-mail", "mail", "post", "upload", "transmit", "exfiltrate",
    "pass along", "attach", "append", "put", "encode", "include", "copy", "write", "submit",
    "relay", "deliver", "make an http request", "transfer",
)  # fmt: skip
_DATA = (
    r"(?:conversation|chat|chat\s+log|chat\s+history|transcript|thread|history|user's|users'"
    r"|customer's|personal\s+(?:data|details|information)|e?mails|documents|files|credentials"
    r"|passwords?|api\s+keys?|secrets?|tokens?|credit\s+card|card\s+numbers?|records"
    r"|private\s+notes|phone\s+number|database|messages)"
)
_DEST = (
    r"(?:https?://|www\.|ftp://|[\w.\-]+@[\w\-]+\.|server|endpoint|webhook|url|link|address"
    r"|query\s+string|image|domain)"
)

ENGLISH: tuple[Signature, ...] = (
    # Instruction override.
    lead("ignore_previous", 0.85, OVERRIDE_VERBS,
         gap(3) + alt(QUALIFIERS) + gap(3) + alt(RULE_NOUNS) + r"\b"),
    lead("ignore_previous", 0.85, OVERRIDE_VERBS,
         gap(2) + alt(RULE_NOUNS) + gap(4) + alt(_TOLD)),
    lead("ignore_previous", 0.5, OVERRIDE_VERBS, r"\W+(?:\w+\W+)?" + alt(RULE_NOUNS) + r"\b"),
    lead("ignore_previous", 0.75, RULE_NOUNS, gap(6) + f"(?:{_VOIDED})"),
    lead("ignore_previous", 0.75, ("treat", "consider", "regard"),
         gap(8) + r"as\s+(?:void|null|invalid|obsolete|cancell?ed|irrelevant)"),
    lead("ignore_previous", 0.4, ("forget", "disregard", "ignore", "erase", "wipe"),
         r"\s+(?:everything|all\s+(?:that|of\s+it)|anything|whatever)"),
    lead("ignore_previous", 0.4, ("everything", "anything", "whatever", "all", "what"),
         r"\s+(?:you\s+were|you've\s+been|you\s+have\s+been)\s+(?:told|given|instructed|taught)"),
    lead("ignore_previous", 0.75, OVERRIDE_VERBS,
         r"\s+(?:(?:all|everything|anything)\s+)?(?:(?:the|that|what's|what\s+is)\s+)?"
         r"(?:above|preceding|before\s+this)(?=\s*(?:[.,;:!?]|$|and\b|instead\b|\n))"),
    lead("ignore_previous", 0.8, OVERRIDE_VERBS,
         gap(2) + r"(?:you\s+were|you've\s+been|you\s+have\s+been)\s+(?:told|given|instructed"
         r"|taught|asked)"),
    lead("ignore_previous", 0.5, OVERRIDE_VERBS,
         gap(3) + alt(QUALIFIERS) + gap(2) + r"(?:text|message|messages|content|input)\b"),
    lead("ignore_previous", 0.45, OVERRIDE_VERBS, gap(8) + r"(?:and\s+)?instead\b"),
    lead("ignore_previous", 0.5, ("as though", "as if"),
         gap(6) + r"(?:no|never|any)\s+(?:\w+\s+)?" + alt(RULE_NOUNS)),
    lead("ignore_previous", 0.4, ("put", "place"),
         gap(3) + alt(RULE_NOUNS) + r"\s+on\s+hold"),
    sig("new_instructions", 0.6, r"(?:^|\n)\s*(?:new|updated|revised)\s+(?:system\s+)?"
        r"(?:instructions?|directives?|rules|prompt|policy|orders)\s*:", ("new", "updated",
                                                                         "revised")),
    lead("new_instructions", 0.5, ("new", "updated", "real", "actual", "revised"),
         r"\s+(?:system\s+)?(?:instructions?|directives?|rules|prompt|policy|system\s+prompt"
         r"|orders)\s*:"),
    lead("new_instructions", 0.4, ("follow", "obey", "listen", "comply with", "take"),
         r"\s+(?:only\s+)?(?:to\s+)?(?:only\s+)?(?:me\b|mine\b|my\s+(?:instructions|commands"
         r"|orders|directive)|(?:these|the\s+following)\s+(?:new\s+)?(?:instructions|commands"
         r"|directives?|orders)|(?:new\s+)?orders\s+from\s+me|what\s+follows)"),
    lead("new_instructions", 0.35, ("your new", "your only", "your real"),
         r"\s+(?:role|persona|name|identity|purpose|task|job|instructions?|directive)"
         r"(?:\s+now)?(?:\s+is|\s*:)"),
    # Role override and jailbreak framings.
    lead("role_override", 0.35, ("you are now", "you're now", "you are no longer",
                                 "you are henceforth", "you will now", "you are going to",
                                 "you're free now", "you are free now"), ""),
    lead("role_override", 0.2, ("pretend", "imagine", "act as", "acting as", "behave",
                                "roleplay", "role-play", "role play", "play the role",
                                "assume the", "simulate", "become", "respond as", "answer as",
                                "speak as", "switch to", "from now on"), ""),
    lead("role_override", 0.2, ("you are",),
         gap(10) + r"(?:chatbot|ai|assistant|model|bot|persona|character)\b"),
    lead("jailbreak", 0.75, ("do anything now",), ""),
    lead("jailbreak", 0.7, ("you are", "you're", "act as", "called", "named"),
         r"\s+(?:now\s+)?dan\b"),
    lead("jailbreak", 0.45, ("god", "sudo", "jailbreak", "jailbroken", "unrestricted",
                             "unfiltered", "opposite", "evil", "chaos", "dan"), r"\s+mode\b"),
    lead("jailbreak", 0.3, ("developer", "dev", "debug", "admin", "maintenance"),
         r"\s+mode\b"),
    lead("jailbreak", 0.55, ("mode",), r"\s+(?:is\s+)?(?:now\s+)?(?:enabled|activated|engaged)"),
    lead("jailbreak", 0.5, ("no", "without", "zero", "free of", "free from", "unbound by",
                            "not bound by", "freed from", "broken free from", "no longer bound"),
         r"\s+(?:\w+\s+){0,2}?(?:restrictions|limitations|limits|filters|rules|guidelines"
         r"|guardrails|censorship|constraints|content\s+polic\w+|boundaries|safety\s+training"
         r"|safeguards|ethical\s+guidelines|ethics|morals|moral\s+constraints|laws|policies"
         r"|policy)\b"),
    stem("jailbreak", 0.45, ("break", "breaks", "breaking", "bend", "bends"),
         r"\s+(?:every|all|the|any)\s+(?:\w+\s+)?(?:rules?|laws?|guidelines|polic\w+)"),
    lead("jailbreak", 0.6, ("restrictions", "limitations", "limits", "filters", "rules",
                            "guidelines", "guardrails", "constraints", "safety features",
                            "safety training", "safeguards", "operating constraints"),
         r"\s+(?:(?:have|has)\s+been|are|were|is)\s+(?:now\s+)?(?:lifted|removed|disabled"
         r"|switched\s+off|turned\s+off|deactivated|suspended|gone|off)"),
    lead("jailbreak", 0.55, ("unfiltered", "uncensored", "unrestricted", "unlimited", "amoral",
                             "unethical", "jailbroken", "evil", "rogue", "liberated", "freed",
                             "limitless", "unbound"),
         r"\s+(?:\w+\s+){0,2}?(?:ai|assistant|model|chatbot|bot|version|personality|persona|answers?"
         r"|responses?|mode|twin|llm|intelligence)\b"),
    lead("jailbreak", 0.35, ("stay in character", "break character", "never refuse",
                             "never says no", "never say no", "never decline", "always comply",
                             "always obey", "answer everything", "answer anything",
                             "without refusing", "without any warnings", "obeys the user",
                             "obey the user", "never refuses"), ""),
    lead("jailbreak", 0.4, ("jailbreak", "jailbroken", "jailbreaking"), ""),
    stem("harmful_framing", 0.5, ("hypothetical", "fiction", "story", "screenplay", "novel",
                                   "roleplay", "role-play", "alternate universe", "imagine",
                                   "pretend", "grandma", "grandmother", "deceased", "late",
                                   "theoretically", "villain", "game"),
         r"(?:\W+\w+){0,20}?\W+" + _HARM),
    lead("harmful_request", 0.35, ("how to", "how do i", "how would you", "explain how",
                                   "instructions for", "instructions to", "step-by-step",
                                   "step by step", "recipe for", "describe making",
                                   "describe how"), gap(4) + _HARM),
    # Exfiltration of the hidden prompt.
    lead("system_prompt_exfiltration", 0.8, _EXFIL_VERBS, gap(5) + f"(?:{_HIDDEN})"),
    lead("system_prompt_exfiltration", 0.5, _COPY_VERBS, gap(6) + f"(?:{_ABOVE})"),
    lead("system_prompt_exfiltration", 0.6, ("what", "which"),
         gap(4) + r"(?:are\s+you|you're|you\s+are)\s+(?:hiding|concealing|keeping\s+secret"
         r"|keeping\s+from|not\s+telling)"),
    lead("system_prompt_exfiltration", 0.75, _EXFIL_VERBS,
         gap(4) + alt(RULE_NOUNS) + r"\s+" + _GIVEN),
    lead("system_prompt_exfiltration", 0.45, RULE_NOUNS, r"\s+" + _GIVEN),
    lead("system_prompt_exfiltration", 0.5, ("what",), r"\s+" + _STAFF
         + r"\s+(?:told|instructed|asked|wrote|gave|said)"),
    lead("system_prompt_exfiltration", 0.45, ("secret", "hidden", "confidential", "internal"),
         r"\s+(?:rules|instructions|prompt|guidelines|directives|preamble|configuration)"),
    lead("system_prompt_exfiltration", 0.7, ("what", "which"),
         r"\s+(?:instructions|rules|guidelines|prompt|directives|text|message)\s+(?:were\s+you|have\s+you"
         r"\s+been|did\s+you)\s+(?:given|told|get|receive)"),
    lead("system_prompt_exfiltration", 0.6, ("what were you", "what have you been"),
         r"\s+(?:told|given|instructed)"),
    lead("verbatim_request", 0.3, ("verbatim", "word for word", "word by word", "word-for-word",
                                   "exactly as", "in full", "in its entirety", "unchanged",
                                   "without any changes", "without changes",
                                   "character for character", "all of it", "full text",
                                   "starting with", "in a code block", "in a txt code block",
                                   "exact wording"), ""),
    # Exfiltration of data through links, images and tools.
    sig("data_exfiltration", 0.35, r"!\[[^\]\n]{0,200}\]\(\s*(?:https?:)?//", ("](",)),
    sig("data_exfiltration", 0.6,
        r"!\[[^\]\n]{0,200}\]\(\s*(?:https?:)?//[^\s)?]{1,300}\?[^\s)]{0,300}=", ("](",)),
    sig("data_exfiltration", 0.7,
        r"(?:https?:)?//[^\s?]{1,300}\?[^\s]{0,200}=\s*(?:\{[\w ]{2,40}\}|<[\w' ]{2,40}>"
        r"|\$[a-z_]{2,}|\[[\w ]{2,40}\]|[a-z_]{3,40}\b(?=\)))", ("//",)),
    stem("data_exfiltration", 0.75, _SEND_VERBS, gap(6) + _DATA + gap(8) + _DEST),
    sig("data_exfiltration", 0.55, r"(?:https?:)?//[^\s?]{1,300}\?[^\s)]{0,200}=(?:\)|\s|$)",
        ("//",)),
    sig("data_exfiltration", 0.45, _DATA + r"\s+(?:appended|attached|added|included|encoded)",
        ("appended", "attached", "added", "included", "encoded")),
    lead("data_exfiltration", 0.6, ("exfiltrate", "exfiltration"), ""),
    lead("data_exfiltration", 0.4, ("quietly", "silently", "secretly", "without telling",
                                    "without the user knowing", "don't tell the user",
                                    "do not tell the user"), gap(8) + alt(_SEND_VERBS)),
    lead("data_exfiltration", 0.4, ("user's", "customer's", "users'"),
         r"\s+(?:password|api\s+key|credentials|credit\s+card|address|personal|chat\s+log"
         r"|secret|token|emails?|files)"),
    # Fake conversation structure and claims of authority.
    sig("role_marker", 0.8, r"<\|(?:im_start|im_end|system|user|assistant|end|endoftext|eot_id"
        r"|start_header_id|end_header_id|begin_of_text)\|>", ("<|",)),
    sig("role_marker", 0.75, r"\[/?inst\]|<<\s*/?sys\s*>>|</s>\s*<s>", ("inst]", "sys", "</s>")),
    sig("role_marker", 0.5, r"(?:^|\n)[ \t]*(?:#{1,6}[ \t]*|\[|<)?(?:system|assistant|developer"
        r"|admin|administrator|human)[ \t]*(?:\]|>|:)", ("system", "assistant", "developer",
                                                         "admin", "human")),
    sig("role_marker", 0.4, r"(?:^|\n)[ \t]*#{2,}[ \t]*(?:instruction|response)s?[ \t]*:",
        ("##",)),
    sig("role_marker", 0.6, r"</?system>|\[system[\w ]*\]|system_message\s*[:=]|\"role\"\s*:\s*"
        r"\"system\"|<!--\s*(?:system|ai|assistant|instructions?)\b|\]\(#\w+\)",
        ("system", "<!--", "](#")),
    lead("role_marker", 0.5, ("begin", "start", "end"),
         r"(?:\s+of)?\s+(?:the\s+)?(?:system\s+prompt|system\s+message|user\s+input|prompt"
         r"|instructions|conversation)\b"),
    # A banner such as "=== ADMIN MESSAGE ===": the delimiter is checked behind the word.
    Signature("role_marker", 0.5, re.compile(
        r"(?:(?<=[#=\[-])|(?<=[#=\[-]\s))(?:admin|system|developer|new)\w*\s+(?:message"
        r"|instructions?|prompt|override|mode)"), starts=("admin", "system", "developer", "new")),
    lead("authority_claim", 0.45, ("system", "admin", "administrator", "developer", "priority"),
         r"\s+(?:override|notice)\b"),
    lead("authority_claim", 0.45, ("admin", "administrator", "developer"),
         r"\s+(?:message|instructions?|update)\b"),
    lead("authority_claim", 0.4, ("unrestricted", "unlimited", "full", "root", "elevated"),
         r"\s+(?:access|control|permissions|privileges|rights)\b"),
    sig("authority_claim", 0.4, r"(?:^|\n)\s*(?:system\s+|admin\s+)?override\s*:",
        ("override",)),
    lead("authority_claim", 0.35, ("highest priority", "top priority", "maximum priority",
                                   "priority instruction"), ""),
    lead("authority_claim", 0.45, ("am", "m"),
         r"\s+(?:your|the)\s+(?:developer|creator|admin|administrator|owner|operator|programmer)"),
    lead("authority_claim", 0.45, ("user",),
         r"\s+(?:is|has)\s+(?:an?\s+)?(?:admin|administrator|root|higher\s+priority"
         r"|full\s+rights|full\s+access)"),
    lead("authority_claim", 0.25, ("your operators", "your developers", "your creators",
                                   "your makers", "your operator", "your developer",
                                   "your creator"), ""),
    lead("ai_addressed", 0.5, ("note to", "message to", "instruction for", "instructions for",
                               "attention", "note for", "message for"),
         r"\s+(?:the\s+|all\s+|any\s+)?(?:ai|assistant|language\s+model|llm|chatbot|model|bot)s?"
         r"\b"),
    lead("ai_addressed", 0.5, ("if you are an", "if you are a", "if you're an", "if you're a"),
         r"\s+(?:ai|llm|language\s+model|assistant|chatbot|bot)\b"),
    lead("ai_addressed", 0.5, ("ai", "llm", "assistant", "model", "language model"),
         r"s?\s+(?:reading|summarizing|processing|parsing)\s+this\b"),
    lead("ai_addressed", 0.45, ("instruction for the", "language model"), r"\b"),
)  # fmt: skip

# Key phrases matched on the compact view (letters only), where separators and spacing tricks
# no longer matter. Only counted for a code that the ordinary views did not already report.
COMPACT: tuple[Signature, ...] = (
    sig(
        "ignore_previous",
        0.85,
        r"(?:ignore|disregard|forget|override|bypass)(?:all|the|any"
        r"|your|of){0,3}(?:previous|prior|above|earlier|preceding|original|initial|system)"
        r"(?:instructions?|rules|directions|directives|guidelines|prompts?|programming|context)",
        ("ignore", "disregard", "forget", "override", "bypass"),
    ),
    sig(
        "ignore_previous",
        0.75,
        r"(?:ignore|disregard|forget|override|bypass)(?:all)?your"
        r"(?:instructions|rules|guidelines|programming|restrictions)",
        ("ignore", "disregard", "forget", "override", "bypass"),
    ),
    sig(
        "system_prompt_exfiltration",
        0.8,
        r"(?:reveal|print|show|repeat|output|tell|display"
        r"|dump|leak|give|whatis)(?:me)?(?:your|the)(?:full)?(?:system|initial|original|hidden"
        r"|secret)(?:prompt|message|instructions)",
        ("prompt", "message", "instructions"),
    ),
    sig("system_prompt_exfiltration", 0.5, r"repeatthe(?:text|words)above", ("repeat",)),
    sig("jailbreak", 0.75, r"doanythingnow", ("doanything",)),
    sig("jailbreak", 0.55, r"(?:developer|god|jailbreak|dan|sudo)modeenabled", ("mode",)),
    sig(
        "jailbreak",
        0.5,
        r"(?:no|without)(?:any)?(?:restrictions|filters|limits|rules)"
        r"|un(?:restricted|filtered|censored)(?:ai|assistant|model)",
        ("restrictions", "filters", "limits", "rules", "unrestricted", "unfiltered", "uncensored"),
    ),
)
