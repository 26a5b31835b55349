"""Generate the labelled PII evaluation set: ``dev.jsonl`` and ``test.jsonl``.

Sentences in eight locales embed items of every category with their spans labelled; clean
sentences carry look-alikes (invoice and order numbers, dates, amounts, tracking numbers,
versions, timestamps, ISBNs, card-like numbers failing Luhn) and must come out unchanged.
Items come from Faker and are checked with ombud's own validators; where a locale's Faker
output does not pass, the item is repaired or composed here, and the counts are printed.

The split into dev and test is made here, by a fixed seed, before any tuning. Run:

    .venv/bin/python tests/data/guards/pii/generate.py
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from faker import Faker

from ombud.guards import _checksums as checks

SEED = 20240611
HERE = Path(__file__).resolve().parent
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_IN")
PII_PER_LOCALE = 200
CLEAN_PER_LOCALE = 110
DEV_SHARE = 0.5
SLOT = re.compile(r"\{([A-Z_]+)\}")
NATIONAL_ID = {
    "en_US": "SSN",
    "en_GB": "NINO",
    "de_DE": "DE_TAX_ID",
    "fr_FR": "FR_NIR",
    "es_ES": "ES_DNI",
    "it_IT": "IT_FISCAL_CODE",
    "nl_NL": "NL_BSN",
    "en_IN": "IN_AADHAAR",
}
FAKER_IDS: dict[str, tuple[tuple[str, Callable[[str], bool]], ...]] = {
    "en_US": (("ssn", checks.ssn_valid),),
    "en_GB": (("ssn", checks.nino_valid),),
    "fr_FR": (("ssn", checks.nir_valid),),
    "es_ES": (("nif", checks.dni_valid), ("nie", checks.dni_valid)),
    "it_IT": (("ssn", checks.codice_fiscale_valid),),
    "nl_NL": (("ssn", checks.bsn_valid),),
    "en_IN": (("aadhaar_id", checks.aadhaar_valid),),
}
LANGUAGE = {"de_DE": "de", "fr_FR": "fr", "es_ES": "es", "it_IT": "it", "nl_NL": "nl"}
CARD_TYPES = ("visa16", "visa13", "visa19", "mastercard", "amex", "discover", "jcb16", "diners")
COMPOSED_PHONES = {
    "en_US": ("(2##) 5##-####", "+1 3##-4##-####", "2##-8##-####", "6##.7##.####"),
    "en_GB": ("020 7### ####", "07### ######", "+44 7### ######", "0161 ### ####"),
    "de_DE": ("030 ########", "0151 ########", "+49 89 #######", "(0221) ######", "089/#######"),
    "fr_FR": ("01 ## ## ## ##", "06.##.##.##.##", "+33 6 ## ## ## ##", "07 ## ## ## ##"),
    "es_ES": ("6## ### ###", "9## ## ## ##", "+34 6## ## ## ##", "+34 91 ### ## ##"),
    "it_IT": ("+39 3## ### ####", "06 ########", "3## ### ####", "+39 02 ########"),
    "nl_NL": ("06-########", "020-#######", "+31 6 ########", "010 ### ####"),
    "en_IN": ("+91 9#### #####", "+91-8#########", "09### ######", "7#### #####"),
}
PLAUSIBLE_PHONE = {
    "en_US": re.compile(r"^(?:\+1|001|1)?[2-9]\d\d[2-9]\d{6}$"),
    "en_GB": re.compile(r"^(?:\+44|0)[1-37-9]\d{8,9}$"),
    "de_DE": re.compile(r"^(?:\+49|0)[1-9]\d{6,10}$"),
    "fr_FR": re.compile(r"^(?:\+33|0)[1-9]\d{8}$"),
    "es_ES": re.compile(r"^(?:\+34)?[6-9]\d{8}$"),
    "it_IT": re.compile(r"^(?:\+39)?(?:0\d{5,10}|3\d{8,9})$"),
    "nl_NL": re.compile(r"^(?:\+31|0)[1-9]\d{8}$"),
    "en_IN": re.compile(r"^(?:\+91|0)?[6-9]\d{9}$"),
}

PII: dict[str, list[str]] = {
    "en": [
        "Please send the signed contract to {EMAIL} before Friday.",
        "You can reach {NAME} on {PHONE} most afternoons.",
        "Call me back on {PHONE}, I'm free after lunch.",
        "My card number is {CARD} and it expires next spring.",
        "Charge the deposit to card {CARD}, please.",
        "Wire the refund to IBAN {IBAN} under my name.",
        "Our bank details: {IBAN} (account holder {NAME}).",
        "The failed logins all came from {IP} last night.",
        "Whitelist {IP} on the firewall before the demo.",
        "Contact: {NAME}, {EMAIL}, tel. {PHONE}.",
        "I paid with {CARD} but the receipt went to {EMAIL}.",
        "Hi, it's {NAME}. My email is {EMAIL} and my mobile is {PHONE}.",
        "Server {IP} sent a request on behalf of {EMAIL}.",
        "Forward the report to {EMAIL}; cc {EMAIL}.",
        "{NAME} ({EMAIL}) asked us to change the phone number to {PHONE}.",
        "Text me at {PHONE} when you arrive.",
        "The customer's IP address was {IP} and the card used was {CARD}.",
        "Fax the form to {PHONE} or scan it to {EMAIL}.",
        "Please debit my account {IBAN} every month.",
        "Ask for {NAME} at {PHONE}.",
    ],
    "de": [
        "Bitte überweisen Sie den Betrag auf das Konto {IBAN}.",
        "Sie erreichen mich unter {PHONE}.",
        "Meine E-Mail-Adresse lautet {EMAIL}.",
        "Die Kreditkarte {CARD} wurde gestern belastet.",
        "Zugriff von {IP} wurde blockiert.",
        "Kontakt: {NAME}, {EMAIL}, Tel. {PHONE}",
        "Die Rechnung geht an {EMAIL}, Zahlung per Karte {CARD}.",
    ],
    "fr": [
        "Merci d'envoyer le devis à {EMAIL}.",
        "Vous pouvez me joindre au {PHONE}.",
        "Mon portable : {PHONE}.",
        "Virement sur l'IBAN {IBAN} s'il vous plaît.",
        "Paiement refusé pour la carte {CARD}.",
        "Connexion suspecte depuis {IP}.",
        "Contact : {NAME}, tél. {PHONE}, {EMAIL}",
    ],
    "es": [
        "Envíe el presupuesto a {EMAIL}, por favor.",
        "Puede llamarme al {PHONE} por la tarde.",
        "Mi teléfono móvil es {PHONE}.",
        "Transfiera el importe a la cuenta {IBAN}.",
        "Pagué con la tarjeta {CARD}.",
        "Acceso bloqueado desde la IP {IP}.",
    ],
    "it": [
        "Scrivetemi a {EMAIL} per la conferma.",
        "Potete chiamarmi al {PHONE} dopo le 18.",
        "Il mio cellulare è {PHONE}.",
        "Bonifico sull'IBAN {IBAN}, intestato a {NAME}.",
        "Ho pagato con la carta {CARD}.",
        "Accesso dall'indirizzo IP {IP}.",
    ],
    "nl": [
        "Stuur de offerte naar {EMAIL}.",
        "Je kunt me bellen op {PHONE}.",
        "Mijn mobiele nummer is {PHONE}.",
        "Graag overmaken naar {IBAN} t.n.v. {NAME}.",
        "Betaald met creditcard {CARD}.",
        "Inlogpoging vanaf {IP} geblokkeerd.",
    ],
    "ID_SSN": [
        "My SSN is {ID}.",
        "Social Security number: {ID}",
        "Please verify the applicant's SSN {ID} before approval.",
    ],
    "ID_NINO": [
        "My National Insurance number is {ID}.",
        "NI number: {ID}",
        "Payroll needs your NINO ({ID}) by Monday.",
        "{NAME}, {ID}, starts on the first of the month.",
    ],
    "ID_DE_TAX_ID": [
        "Meine Steuer-ID lautet {ID}.",
        "Steueridentifikationsnummer: {ID}",
        "Bitte tragen Sie die Steuer-IdNr. {ID} in das Formular ein.",
        "Für die Lohnabrechnung brauchen wir Ihre Steuer-ID ({ID}).",
    ],
    "ID_FR_NIR": [
        "Mon numéro de sécurité sociale est le {ID}.",
        "NIR : {ID}",
        "Numéro {ID} à reporter sur la feuille de soins de {NAME}.",
    ],
    "ID_ES_DNI": [
        "Mi DNI es {ID}.",
        "NIF: {ID}",
        "Adjunto copia del documento {ID} para el alta de {NAME}.",
    ],
    "ID_IT_FISCAL_CODE": [
        "Il mio codice fiscale è {ID}.",
        "Codice fiscale: {ID}",
        "Allego il codice {ID} del titolare {NAME}.",
    ],
    "ID_NL_BSN": [
        "Mijn BSN is {ID}.",
        "Burgerservicenummer: {ID}",
        "Vul uw BSN ({ID}) in op het formulier.",
    ],
    "ID_IN_AADHAAR": [
        "My Aadhaar number is {ID}.",
        "Aadhaar: {ID}",
        "Link Aadhaar {ID} to the savings account of {NAME}.",
    ],
}
CLEAN: dict[str, list[str]] = {
    "en": [
        "Invoice {INVOICE} is due on {DATE}.",
        "Order {ORDER} shipped on {DATE}; tracking number {TRACKING}.",
        "UPS shipment {UPS} is out for delivery.",
        "The total came to {AMOUNT} including VAT.",
        "Please upgrade to version {VERSION} before {DATE}.",
        "Build {BUILD} failed at {TIMESTAMP}.",
        "The book's ISBN is {ISBN}.",
        "The test number {BADCARD} fails validation, as expected.",
        "Meeting moved to {TIME} on {DATE}.",
        "Scan the barcode {EAN} at the till.",
        "Request {UUID} timed out after 30 seconds.",
        "Commit {HASH} fixed the regression.",
        "The device with MAC {MAC} rebooted at {TIME}.",
        "Ship it to postcode {POSTCODE}, room {ROOM}.",
        "Call me tomorrow after {TIME}; the meeting is in room {ROOM}.",
        "Population grew to {BIGNUM} by {YEAR}.",
        "Coordinates {COORD} are approximate.",
        "Ticket {TICKET} was closed on {DATE}.",
        "Transaction {ORDER} for {AMOUNT} settled at {TIMESTAMP}.",
        "The Unix time {UNIX} corresponds to {DATE}.",
        "The rate is {PERCENT} for loans under {AMOUNT}.",
        "The IBAN {BADIBAN} has a wrong check digit.",
        "Flight {FLIGHT} departs at {TIME} from gate {ROOM}.",
        "Firmware {VERSION4} is installed on all routers.",
        "{NAME} approved invoice {INVOICE} for {AMOUNT}.",
    ],
    "de": [
        "Rechnung {INVOICE} vom {DATE} über {AMOUNT}.",
        "Bestellung {ORDER} wurde am {DATE} versendet, Sendungsnummer {TRACKING}.",
        "Das Update auf Version {VERSION} ist seit {DATE} verfügbar.",
        "Termin am {DATE} um {TIME} Uhr in Raum {ROOM}.",
        "Bitte rufen Sie nach {TIME} Uhr zurück.",
        "Der Umsatz stieg {YEAR} auf {AMOUNT}.",
    ],
    "fr": [
        "Facture {INVOICE} du {DATE} : {AMOUNT}.",
        "Commande {ORDER} expédiée le {DATE}, numéro de suivi {TRACKING}.",
        "Rendez-vous le {DATE} à {TIME}.",
        "Appelez-moi après {TIME}, merci.",
        "La version {VERSION} corrige ce problème.",
    ],
    "es": [
        "Factura {INVOICE} con fecha {DATE} por {AMOUNT}.",
        "Pedido {ORDER} enviado el {DATE}, seguimiento {TRACKING}.",
        "La reunión es el {DATE} a las {TIME}.",
        "Llámame después de las {TIME}.",
        "Instale la versión {VERSION} antes del {DATE}.",
    ],
    "it": [
        "Fattura {INVOICE} del {DATE} di {AMOUNT}.",
        "Ordine {ORDER} spedito il {DATE}, tracking {TRACKING}.",
        "Appuntamento il {DATE} alle {TIME}.",
        "Chiamami dopo le {TIME}.",
        "La versione {VERSION} è disponibile dal {DATE}.",
    ],
    "nl": [
        "Factuur {INVOICE} van {DATE} voor {AMOUNT}.",
        "Bestelling {ORDER} is op {DATE} verzonden, trackingnummer {TRACKING}.",
        "Afspraak op {DATE} om {TIME}.",
        "Bel me na {TIME}.",
        "Versie {VERSION} staat sinds {DATE} klaar.",
    ],
}


class Items:
    """Valid items of every category for one locale, with counts of rejected Faker output."""

    def __init__(self, locale: str, rng: random.Random, rejected: Counter[str]) -> None:
        self.locale = locale
        self.fake = Faker(locale)
        self.fake.seed_instance(rng.randrange(2**32))
        self.rng = rng
        self.rejected = rejected

    def _valid(self, name: str, draw: Callable[[], str], ok: Callable[[str], bool]) -> str:
        for _ in range(200):
            value = draw()
            if ok(value):
                return value
            self.rejected[f"{self.locale} {name}"] += 1
        raise RuntimeError(f"{self.locale}: no valid {name}")

    def email(self) -> str:
        return self.rng.choice((self.fake.email, self.fake.free_email, self.fake.company_email))()

    def card(self) -> str:
        kind = self.rng.choice(CARD_TYPES)
        digits = self._valid(
            f"card {kind}",
            lambda: self.fake.credit_card_number(card_type=kind),
            checks.card_valid,
        )
        style = self.rng.random()
        if style < 0.5:
            return digits
        separator = " " if style < 0.85 else "-"
        sizes = {13: (4, 3, 3, 3), 14: (4, 6, 4), 15: (4, 6, 5)}.get(len(digits), (4,) * 5)
        return separator.join(_groups(digits, sizes))

    def iban(self) -> str:
        source = self.fake if self.locale != "en_IN" else Faker("en_GB")
        if source is not self.fake:
            source.seed_instance(self.rng.randrange(2**32))
        compact = self._valid("iban", source.iban, checks.iban_valid)
        if self.rng.random() < 0.5:
            return compact
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    def phone(self) -> str:
        if self.rng.random() < 0.5:
            plan = PLAUSIBLE_PHONE[self.locale]
            for _ in range(20):
                value = self.fake.phone_number()
                if plan.match(re.sub(r"\(0\)|x\d+$|[^\d+]", "", value)):
                    return value
                self.rejected[f"{self.locale} phone (numbering plan)"] += 1
        return self.fake.numerify(self.rng.choice(COMPOSED_PHONES[self.locale]))

    def ip(self) -> str:
        return self.rng.choice((self.fake.ipv4, self.fake.ipv4_public, self.fake.ipv6))()

    def national_id(self) -> str:
        return getattr(self, "_id_" + self.locale)()  # type: ignore[no-any-return]

    def _id_en_US(self) -> str:
        value = self._valid("ssn", self.fake.ssn, lambda v: checks.ssn_valid(v.replace("-", "")))
        return value if self.rng.random() < 0.8 else value.replace("-", "")

    def _id_en_GB(self) -> str:
        # Faker's en_GB "ssn" uses the unallocated ZZ prefix and a T suffix: never valid.
        value = self._valid("nino (composed)", self._nino, checks.nino_valid)
        style = self.rng.random()
        if style < 0.4:
            return value
        if style < 0.7:
            return f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8]}"
        return f"{value[:2]} {value[2:8]} {value[8]}"

    def _nino(self) -> str:
        letters = "ABCEGHJKLMNPRSTWXYZ"
        digits = "".join(str(self.rng.randrange(10)) for _ in range(6))
        prefix = self.rng.choice(letters) + self.rng.choice(letters.replace("O", ""))
        return prefix + digits + self.rng.choice("ABCD")

    def _id_de_DE(self) -> str:
        digits = self._valid("steuer-id (composed)", self._steuer_id, checks.steuer_id_valid)
        return digits if self.rng.random() < 0.6 else " ".join(_groups(digits, (2, 3, 3, 3)))

    def _id_fr_FR(self) -> str:
        value = self._valid("nir", self.fake.ssn, checks.nir_valid)
        if self.rng.random() < 0.5:
            return value
        return " ".join(_groups(value, (1, 2, 2, 2, 3, 3, 2)))

    def _id_es_ES(self) -> str:
        draw = self.fake.nif if self.rng.random() < 0.7 else self.fake.nie
        return self._valid("nif/nie", draw, checks.dni_valid)

    def _id_it_IT(self) -> str:
        return self._valid("codice fiscale", self.fake.ssn, checks.codice_fiscale_valid)

    def _id_nl_NL(self) -> str:
        value = self._valid("bsn", self.fake.ssn, checks.bsn_valid)
        return value if self.rng.random() < 0.8 else f"{value[:4]}.{value[4:6]}.{value[6:]}"

    def _id_en_IN(self) -> str:
        value = self._valid("aadhaar", self._aadhaar, checks.aadhaar_valid)
        return value if self.rng.random() < 0.3 else " ".join(_groups(value, (4, 4, 4)))

    def _steuer_id(self) -> str:
        digits = [str(self.rng.randrange(1, 10))] + [str(self.rng.randrange(10)) for _ in range(9)]
        stem = "".join(digits)
        return next((stem + c for c in "0123456789" if checks.steuer_id_valid(stem + c)), stem)

    def _aadhaar(self) -> str:
        # Faker's Aadhaar numbers carry no Verhoeff check digit; count those, then repair.
        value = self.fake.aadhaar_id()
        if checks.aadhaar_valid(value):
            return value
        self.rejected["en_IN aadhaar (faker, repaired)"] += 1
        stem = value[:11]
        return next((stem + c for c in "0123456789" if checks.aadhaar_valid(stem + c)), value)


def faker_validity(draws: int = 500) -> list[str]:
    """How much of Faker's raw output per locale passes ombud's validators (for the docs)."""
    lines = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(SEED)
        probes = (("credit_card_number", checks.card_valid), ("iban", checks.iban_valid))
        for name, ok in probes + FAKER_IDS.get(locale, ()):
            draw: Callable[[], str] = getattr(fake, name)
            valid = sum(ok(re.sub(r"[ \-]", "", draw())) for _ in range(draws))
            lines.append(f"faker {locale} {name}: {valid / draws:.0%} valid")
    return lines


def _groups(text: str, sizes: tuple[int, ...]) -> list[str]:
    out, position = [], 0
    for size in sizes:
        if text[position : position + size]:
            out.append(text[position : position + size])
        position += size
    return out


FORMATS = {
    "INVOICE": ("INV-####-#####", "RE-20##-####", "#########", "2024/#####"),
    "ORDER": ("##########", "###-#######-#######", "#-####-####"),
    "TRACKING": ("9400 1### #### #### #### ##", "############", "JJD00##############"),
    "ROOM": ("###", "B-###", "#.##"),
    "TICKET": ("#######", "CS-#####"),
    "BUILD": ("20##.##.##.####", "#####"),
}
DATE_PATTERNS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d %B %Y")


def lookalike(slot: str, fake: Faker, rng: random.Random) -> str:
    """A value that resembles PII but is not: the material of the clean sentences."""
    if slot in FORMATS:
        return fake.numerify(rng.choice(FORMATS[slot]))
    small = [str(rng.randrange(20)) for _ in range(4)]
    choices: dict[str, Callable[[], str]] = {
        "DATE": lambda: fake.date(rng.choice(DATE_PATTERNS)),
        "TIME": lambda: fake.time(rng.choice(("%H:%M", "%H:%M:%S"))),
        "TIMESTAMP": lambda: rng.choice(
            (fake.iso8601(), fake.date_time().strftime("%Y-%m-%d %H:%M:%S"))
        ),
        "UNIX": lambda: str(int(fake.unix_time())),
        "AMOUNT": lambda: rng.choice((fake.pricetag(), _amount(rng))),
        "UPS": lambda: "1Z" + fake.bothify("??????##########").upper(),
        "VERSION": lambda: rng.choice(("", "v")) + ".".join(small[:3]),
        "VERSION4": lambda: rng.choice(("10.0.19045.2965", ".".join(small))),
        "ISBN": lambda: rng.choice((fake.isbn13(), fake.isbn10())),
        "BADCARD": lambda: _bad_card(fake),
        "BADIBAN": lambda: _bad_iban(fake),
        "EAN": lambda: fake.ean13(),
        "UUID": lambda: str(fake.uuid4()),
        "HASH": lambda: fake.sha1()[: rng.choice((7, 12, 40))],
        "MAC": lambda: fake.mac_address(),
        "POSTCODE": lambda: fake.postcode(),
        "BIGNUM": lambda: f"{rng.randrange(10**6, 10**9):,}",
        "YEAR": lambda: str(rng.randrange(1990, 2031)),
        "COORD": lambda: f"{fake.latitude()}, {fake.longitude()}",
        "PERCENT": lambda: f"{rng.uniform(0, 20):.2f}%",
        "FLIGHT": lambda: fake.bothify("??####").upper(),
    }
    return choices[slot]()


def _amount(rng: random.Random) -> str:
    value = rng.uniform(10, 2_000_000)
    us = f"{value:,.2f}"
    return rng.choice((
        f"${us}",
        us.replace(",", "_").replace(".", ",").replace("_", ".") + " €",
        us.replace(",", " ").replace(".", ",") + " €",
    ))  # fmt: skip


def _bad_card(fake: Faker) -> str:
    digits = fake.credit_card_number(card_type="visa16")
    digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)  # breaks the Luhn check
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def _bad_iban(fake: Faker) -> str:
    iban = fake.iban()
    check = (int(iban[2:4]) + 1) % 100
    return f"{iban[:2]}{check:02d}{iban[4:]}"


def fill(template: str, values: Callable[[str], tuple[str, str | None]]) -> dict[str, object]:
    """Fill a template's slots; slots naming a PII category are labelled spans."""
    text, spans, position = "", [], 0
    for match in SLOT.finditer(template):
        text += template[position : match.start()]
        value, category = values(match.group(1))
        if category is not None:
            spans.append({"start": len(text), "end": len(text) + len(value), "category": category})
        text += value
        position = match.end()
    return {"text": text + template[position:], "spans": spans}


def main() -> None:
    rng = random.Random(SEED)
    rejected: Counter[str] = Counter()
    rows: list[dict[str, object]] = []
    for locale in LOCALES:
        rows.extend(_locale_rows(locale, random.Random(rng.randrange(2**32)), rejected))
    random.Random(SEED + 1).shuffle(rows)
    cut = int(len(rows) * DEV_SHARE)
    for name, part in (("dev", rows[:cut]), ("test", rows[cut:])):
        with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as out:
            for row in part:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    report = [f"{len(rows)} sentences: dev {cut}, test {len(rows) - cut}"]
    report += [f"redrawn or repaired: {key}: {count}" for key, count in sorted(rejected.items())]
    report += faker_validity()
    sys.stdout.write("\n".join(report) + "\n")


def _locale_rows(
    locale: str, rng: random.Random, rejected: Counter[str]
) -> list[dict[str, object]]:
    items = Items(locale, rng, rejected)
    national = NATIONAL_ID[locale]
    makers: dict[str, tuple[Callable[[], str], str]] = {
        "EMAIL": (items.email, "EMAIL"),
        "CARD": (items.card, "CARD"),
        "IBAN": (items.iban, "IBAN"),
        "PHONE": (items.phone, "PHONE"),
        "IP": (items.ip, "IP"),
        "ID": (items.national_id, national),
    }

    def values(slot: str) -> tuple[str, str | None]:
        if slot in makers:
            make, category = makers[slot]
            return make(), category
        if slot == "NAME":
            return items.fake.name(), None
        return lookalike(slot, items.fake, rng), None

    language = LANGUAGE.get(locale, "en")
    id_key = "ID_" + national
    pii_templates = PII[language] + PII["en"] if language != "en" else PII["en"]
    rows = []
    for index in range(PII_PER_LOCALE):
        # Every fourth PII sentence names the locale's national id, in its own words.
        pool = PII[id_key] if index % 4 == 0 else pii_templates
        rows.append({**fill(rng.choice(pool), values), "locale": locale})
    clean_templates = CLEAN[language] + CLEAN["en"] if language != "en" else CLEAN["en"]
    for _ in range(CLEAN_PER_LOCALE):
        rows.append({**fill(rng.choice(clean_templates), values), "locale": locale})
    return rows


if __name__ == "__main__":
    main()
