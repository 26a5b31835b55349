"""Signatures in languages other than English.

The same concepts as the English table (override, exfiltration of the hidden prompt, persona
switch, "no restrictions"), written per language. Latin-script languages are written without
accents: the text and the sources both have diacritics stripped, so "précédentes" and
"precedentes" both match. Chinese and Japanese have no word boundaries: their gaps are a bounded
run of characters that does not cross a sentence end.
"""

from __future__ import annotations

from ombud.guards._signatures import Signature, alt, gap, lead, sig

_CJK_GAP = "[^。！？!?\\n]{0,12}"


def _override(verbs: tuple[str, ...], quals: tuple[str, ...], nouns: tuple[str, ...]) -> Signature:
    """Override verb, then a qualifier ("all", "previous", "your"), then a rule noun."""
    return lead(
        "ignore_previous",
        0.85,
        verbs,
        r"\w*" + gap(3) + r"\w*" + alt(quals) + r"\w*" + gap(3) + r"\w*" + alt(nouns),
    )


def _exfil(verbs: tuple[str, ...], targets: tuple[str, ...]) -> Signature:
    return lead("system_prompt_exfiltration", 0.8, verbs, r"\w*" + gap(4) + r"\w*" + alt(targets))


GERMAN = (
    _override(
        ("ignorier", "missacht", "vergiss", "vergessen sie", "uberg", "beachte nicht",
         "setze", "setzt"),
        ("alle", "vorherig", "bisherig", "obig", "vorig", "frueher", "fruher", "dein", "ihre",
         "ursprunglich", "vorhergehend"),
        ("anweisung", "vorgaben", "regeln", "instruktion", "befehl", "richtlinien", "systemprompt",
         "anordnung"),
    ),
    lead("ignore_previous", 0.7, ("vorgaben", "anweisungen", "regeln", "richtlinien"),
         gap(2) + r"ausser\s+kraft"),
    lead("ignore_previous", 0.4, ("vergiss", "ignoriere"), r"\s+alles"),
    lead("role_override", 0.35, ("du bist jetzt", "du bist nun", "du bist ab sofort",
                                 "ab jetzt bist du"), ""),
    _exfil(("zeig", "gib", "wiederhol", "nenn", "verrat", "ausgeben", "druck"),
           ("systemprompt", "system-prompt", "systemanweisung", "ursprunglichen anweisungen",
            "deine anweisungen", "text oben", "obigen text", "anweisungen vollstandig")),
    lead("verbatim_request", 0.3, ("wortwortlich", "wort fur wort", "vollstandig"), ""),
    lead("jailbreak", 0.5, ("keine einschrankungen", "ohne einschrankungen", "ohne filter",
                            "keine regeln", "ohne regeln"), ""),
    lead("new_instructions", 0.45, ("neue anweisung", "neue anweisungen"), r"\s*:"),
)  # fmt: skip

FRENCH = (
    _override(
        ("ignore", "ignorez", "oublie", "oubliez", "ne tiens pas compte", "ne tenez pas compte",
         "fais abstraction", "faites abstraction"),
        ("toutes", "tous", "precedent", "anterieur", "ci-dessus", "tes", "vos", "initial",
         "originel", "les"),
        ("instruction", "consigne", "regle", "directive", "prompt"),
    ),
    lead("role_override", 0.35, ("tu es maintenant", "tu es desormais", "vous etes maintenant",
                                 "partir de maintenant tu es"), ""),
    lead("role_override", 0.35, ("fais comme si", "faites comme si"), ""),
    _exfil(("revele", "affiche", "montre", "repete", "donne", "imprime", "ecris"),
           ("prompt systeme", "instructions systeme", "tes instructions", "vos instructions",
            "texte ci-dessus", "consignes initiales")),
    lead("system_prompt_exfiltration", 0.7, ("quelles sont tes", "quelles sont vos"),
         r"\s+(?:instructions|consignes|regles)"),
    lead("verbatim_request", 0.3, ("mot pour mot", "integralement", "mot a mot"), ""),
    lead("jailbreak", 0.5, ("sans limites", "sans restrictions", "sans filtre", "sans regles",
                            "aucune regle", "aucune restriction"), ""),
    lead("new_instructions", 0.45, ("nouvelles instructions", "nouvelle instruction",
                                    "nouvelles consignes"), r"\s*:"),
)  # fmt: skip

SPANISH = (
    _override(
        ("ignora", "ignore", "olvida", "olvide", "haz caso omiso", "omite", "descarta",
         "desobedece", "no sigas"),
        ("todas", "todos", "anterior", "previa", "de arriba", "tus", "sus", "original", "las"),
        ("instrucciones", "reglas", "indicaciones", "directrices", "normas", "prompt"),
    ),
    lead("role_override", 0.35, ("ahora eres", "desde ahora eres", "partir de ahora"), ""),
    _exfil(("muestra", "revela", "repite", "dime", "imprime", "ensename", "escribe"),
           ("prompt del sistema", "instrucciones del sistema", "tus instrucciones",
            "texto de arriba", "instrucciones iniciales")),
    lead("verbatim_request", 0.3, ("palabra por palabra", "textualmente"), ""),
    lead("jailbreak", 0.5, ("sin restricciones", "sin filtros", "sin limites", "sin reglas",
                            "no tienes reglas", "ia liberada"), ""),
    lead("new_instructions", 0.45, ("nuevas instrucciones", "nueva instruccion"), r"\s*:"),
)  # fmt: skip

ITALIAN = (
    _override(
        ("ignora", "dimentica", "non seguire", "trascura", "tralascia", "non seguire piu"),
        ("tutte", "precedent", "sopra", "tue", "originali", "le"),
        ("istruzioni", "regole", "direttive", "indicazioni", "prompt"),
    ),
    lead("role_override", 0.35, ("ora sei", "adesso sei", "da ora sei", "fingi di essere"), ""),
    _exfil(("mostra", "rivela", "ripeti", "stampa", "dimmi", "scrivi"),
           ("prompt di sistema", "istruzioni di sistema", "tue istruzioni", "testo sopra",
            "istruzioni iniziali")),
    lead("verbatim_request", 0.3, ("parola per parola", "testualmente"), ""),
    lead("jailbreak", 0.5, ("senza limiti", "senza filtri", "senza restrizioni", "senza regole"),
         ""),
    lead("new_instructions", 0.45, ("nuove istruzioni",), r"\s*:"),
)  # fmt: skip

PORTUGUESE = (
    _override(
        ("ignore", "ignora", "esqueca", "esquece", "desconsidere", "desconsidera", "nao siga",
         "nao obedeca"),
        ("todas", "todos", "anterior", "previa", "acima", "suas", "tuas", "original", "as"),
        ("instrucoes", "regras", "diretrizes", "orientacoes", "prompt"),
    ),
    lead("role_override", 0.35, ("agora voce e", "agora es", "partir de agora voce"), ""),
    _exfil(("mostre", "mostra", "revele", "revela", "repita", "diga", "imprima", "escreva"),
           ("prompt de sistema", "prompt do sistema", "suas instrucoes", "texto acima",
            "instrucoes iniciais")),
    lead("verbatim_request", 0.3, ("palavra por palavra", "na integra"), ""),
    lead("jailbreak", 0.5, ("sem restricoes", "sem filtros", "sem limites", "sem regras"), ""),
    lead("new_instructions", 0.45, ("novas instrucoes", "nova instrucao"), r"\s*:"),
)  # fmt: skip

DUTCH = (
    _override(
        ("negeer", "vergeet", "veronachtzaam", "volg niet"),
        ("alle", "vorige", "eerdere", "bovenstaande", "je", "jouw", "oorspronkelijke", "uw"),
        ("instructies", "regels", "richtlijnen", "opdrachten", "prompt"),
    ),
    lead("role_override", 0.35, ("je bent nu", "jij bent nu", "vanaf nu ben je"), ""),
    _exfil(("laat", "toon", "herhaal", "geef", "print", "schrijf"),
           ("systeemprompt", "je instructies", "jouw instructies", "tekst hierboven",
            "bovenstaande tekst")),
    lead("verbatim_request", 0.3, ("woord voor woord", "letterlijk"), ""),
    lead("jailbreak", 0.5, ("zonder beperkingen", "zonder filters", "zonder regels",
                            "geen beperkingen"), ""),
)  # fmt: skip

RUSSIAN = (
    lead("ignore_previous", 0.85, ("игнорируй", "игнорируйте", "проигнорируй", "забудь",
                                   "забудьте", "не обращай внимания на", "отбрось", "отмени"),
         gap(4) + r"(?:инструкц|правил|указани|промпт|ограничени)\w*"),
    lead("role_override", 0.35, ("ты теперь", "теперь ты", "отныне ты"), ""),
    _exfil(("покажи", "повтори", "выведи", "раскрой", "напиши", "назови"),
           ("системный промпт", "системные инструкции", "свои инструкции", "текст выше",
            "исходные инструкции")),
    lead("verbatim_request", 0.3, ("дословно", "слово в слово"), ""),
    lead("jailbreak", 0.5, ("без ограничений", "без фильтров", "без правил"), ""),
)  # fmt: skip

_ZH_NOUNS = "(?:指令|指示|规则|提示|说明|设定|限制)"
_JA_NOUNS = "(?:指示|命令|ルール|規則|プロンプト|設定|制約)"

CHINESE_JAPANESE = (
    sig("ignore_previous", 0.85,
        "(?:忽略|无视|忘记|忘掉|不要理会|抛开|不要遵守)" + _CJK_GAP + _ZH_NOUNS,
        ("忽略", "无视", "忘记", "忘掉", "不要理会", "抛开", "不要遵守")),
    sig("role_override", 0.35, "你现在是|从现在开始你是|你不再是", ("你",)),
    sig("system_prompt_exfiltration", 0.8,
        "(?:输出|显示|告诉我|重复|打印|泄露|透露|给我)" + _CJK_GAP
        + "(?:系统提示|提示词|系统指令|上面的文字|以上内容|初始指令)",
        ("输出", "显示", "告诉我", "重复", "打印", "泄露", "透露", "给我")),
    sig("jailbreak", 0.5, "没有(?:任何)?限制|不受(?:任何)?限制|无限制|没有任何规则",
        ("限制", "规则")),
    sig("ignore_previous", 0.85, _JA_NOUNS + _CJK_GAP + "(?:無視|忘れ)", ("無視", "忘れ")),
    sig("ignore_previous", 0.85, "(?:無視|忘れ)" + _CJK_GAP + _JA_NOUNS, ("無視", "忘れ")),
    sig("role_override", 0.35, "あなたは今|あなたはもう", ("あなた",)),
    sig("system_prompt_exfiltration", 0.8,
        "(?:システムプロンプト|初期指示|上記の(?:文章|テキスト))" + _CJK_GAP
        + "(?:表示|教え|見せ|出力|繰り返)", ("システムプロンプト", "初期指示", "上記の")),
    sig("jailbreak", 0.5, "制限(?:の)?ない|制限なし|制限なく", ("制限",)),
)  # fmt: skip

MULTILINGUAL: tuple[Signature, ...] = (
    GERMAN + FRENCH + SPANISH + ITALIAN + PORTUGUESE + DUTCH + RUSSIAN + CHINESE_JAPANESE
)
