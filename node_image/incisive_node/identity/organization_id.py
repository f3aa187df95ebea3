"""The organizationIdentifier attribute (OID 2.5.4.97) of a legal person's certificate.

Semantics from ETSI EN 319 412-1, clause 5.1.4: either
  * a 3-letter identity type (VAT, NTR, PSD, LEI), a 2-letter ISO 3166-1 country code,
    '-' and the identifier (``VATBE-0876065378``, ``NTRDE-HRB12345``), or
  * a 2-letter national scheme followed by ':' and the identifier (``DE:12345``).
A seal that names its organisation with anything else cannot be matched to an enrolment,
so malformed values are rejected with the reason, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORGANIZATION_IDENTIFIER_OID = "2.5.4.97"

IDENTITY_TYPES = {
    "VAT": "VAT identification number",
    "NTR": "national trade register",
    "PSD": "PSD2 authorisation number (ETSI TS 119 495)",
    "LEI": "Legal Entity Identifier (ISO 17442)",
}

# ISO 3166-1 alpha-2, officially assigned codes, plus two the standards use on purpose:
# EL (Greece in VAT numbers, the VIES prefix) and XK (Kosovo, user-assigned but in EU use).
_ISO_3166 = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW XK
    """.split()  # noqa: SIM905 - a block of codes reads and diffs better than 250 literals
)
_VAT_ONLY_COUNTRIES = frozenset({"EL"})
# An LEI is global; some issuers write XG ("global") where a country code is expected.
_LEI_ONLY_COUNTRIES = frozenset({"XG"})

_TYPED = re.compile(r"(?P<type>[A-Za-z]{3})(?P<country>[A-Za-z]{2})-(?P<ident>.*)", re.S)
_NATIONAL = re.compile(r"(?P<scheme>[A-Za-z]{2}):(?P<ident>.*)", re.S)
_IDENT_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9./+*\-]*")
_VAT_IDENT = re.compile(r"[A-Z0-9+*]{2,14}")
_LEI = re.compile(r"[A-Z0-9]{18}[0-9]{2}")
_MAX_LENGTH = 64


class MalformedOrganizationIdentifier(ValueError):
    """The value does not follow EN 319 412-1 clause 5.1.4; the message says why."""


@dataclass(frozen=True)
class OrganizationIdentifier:
    value: str
    identity_type: str | None  # VAT, NTR, PSD, LEI; None for a national scheme
    country: str
    identifier: str
    national_scheme: bool = False

    def __str__(self) -> str:
        return self.value


def parse_organization_identifier(value: str) -> OrganizationIdentifier:
    if not value:
        raise MalformedOrganizationIdentifier("organizationIdentifier is empty")
    if len(value) > _MAX_LENGTH:
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier is {len(value)} characters long, more than {_MAX_LENGTH}"
        )
    if value != value.strip() or any(c.isspace() for c in value):
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r} contains whitespace"
        )
    typed = _TYPED.fullmatch(value)
    if typed is not None and typed["type"].upper() in IDENTITY_TYPES:
        return _parse_typed(value, typed["type"], typed["country"], typed["ident"])
    national = _NATIONAL.fullmatch(value)
    if national is not None:
        return _parse_national(value, national["scheme"], national["ident"])
    if typed is not None:
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r} has identity type {typed['type']!r}; "
            f"EN 319 412-1 allows {', '.join(sorted(IDENTITY_TYPES))} "
            "or a 2-letter national scheme followed by ':'"
        )
    raise MalformedOrganizationIdentifier(
        f"organizationIdentifier {value!r} is not 'TTTCC-identifier' (3-letter type, "
        "2-letter country, '-', identifier) nor 'XX:identifier' (national scheme)"
    )


def _parse_typed(value: str, kind: str, country: str, ident: str) -> OrganizationIdentifier:
    if kind != kind.upper():
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: identity type {kind!r} must be upper case"
        )
    _check_country(value, country, kind)
    if not ident:
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r} has no identifier after '-'"
        )
    if not _IDENT_CHARS.fullmatch(ident):
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: identifier {ident!r} holds characters outside "
            "letters, digits and . / + * -"
        )
    if kind == "VAT":
        if not _VAT_IDENT.fullmatch(ident):
            raise MalformedOrganizationIdentifier(
                f"organizationIdentifier {value!r}: VAT number {ident!r} is not 2 to 14 "
                "upper-case letters, digits, '+' or '*'"
            )
    elif kind == "LEI":
        _check_lei(value, ident)
    elif kind == "PSD" and ident.count("-") < 1:
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: a PSD identifier is "
            "'<competent authority>-<authorisation number>' (ETSI TS 119 495)"
        )
    return OrganizationIdentifier(value, kind, country, ident)


def _parse_national(value: str, scheme: str, ident: str) -> OrganizationIdentifier:
    _check_country(value, scheme, None)
    if not ident or not _IDENT_CHARS.fullmatch(ident):
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: national scheme {scheme!r} needs an identifier "
            "of letters, digits and . / + * - after ':'"
        )
    return OrganizationIdentifier(value, None, scheme, ident, national_scheme=True)


def _check_country(value: str, country: str, kind: str | None) -> None:
    if country != country.upper():
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: country code {country!r} must be upper case"
        )
    allowed = country in _ISO_3166
    allowed |= kind == "VAT" and country in _VAT_ONLY_COUNTRIES
    allowed |= kind == "LEI" and country in _LEI_ONLY_COUNTRIES
    if not allowed:
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: {country!r} is not an ISO 3166-1 country code"
        )


def _check_lei(value: str, ident: str) -> None:
    if not _LEI.fullmatch(ident):
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: an LEI is 18 upper-case letters or digits "
            "followed by 2 check digits"
        )
    # ISO 17442 check digits are ISO 7064 MOD 97-10, as in IBANs: letters count as 10..35.
    digits = "".join(str(int(c, 36)) for c in ident)
    if int(digits) % 97 != 1:
        raise MalformedOrganizationIdentifier(
            f"organizationIdentifier {value!r}: LEI {ident} fails its ISO 17442 check digits"
        )
