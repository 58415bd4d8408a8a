"""The TLS-RPT policy record (RFC 8460 §3): ``_smtp._tls.<domain>`` TXT, parsed and judged.

Pure. :func:`parse` reads one record's text by the RFC's grammar; :func:`policy` applies §3's
selection rules to a TXT RRset (records not beginning ``v=TLSRPTv1;`` are discarded, exactly
one must remain); :func:`findings` turns a check's lookup into the ``tlsrpt-*`` findings and
:func:`to_dict` into the ``tlsrpt`` key of the domain JSON (docs/json.md). None of it changes
the RFC 7672 verdict: the record says where senders report, not whether they deliver.

The grammar (RFC 8460 §3, ``%s`` strings are case-sensitive)::

    tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
    field-delim      = *WSP ";" *WSP
    tlsrpt-field     = tlsrpt-rua / tlsrpt-extension       ; rua is required
    tlsrpt-version   = %s"v=TLSRPTv1"
    tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
    tlsrpt-uri       = URI   ; RFC 3986; ",", "!" and ";" MUST be percent-encoded
    tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
    tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
    tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)

Report URIs are ``mailto:`` or ``https:`` (§3: the two delivery methods of §5.2 and §5.3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from dane_monitor._memo import ByIdentity
from dane_monitor.findings import Place, finding
from dane_monitor.lookup.answer import Answer, Kind, Status
from dane_monitor.report import Finding, Severity

W, I = Severity.WARNING, Severity.INFO  # noqa: E741

VERSION = "v=TLSRPTv1"
SCHEMES = ("mailto", "https")

_WSP = "[ \t]*"
_DELIM = re.compile(rf"{_WSP};{_WSP}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+\Z")
# RFC 3986 URI characters, without "!", "," and ";" (RFC 8460 §3: they MUST be encoded).
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@$&'()*+=]|%[0-9A-Fa-f]{2})+\Z")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HTTPS_AUTHORITY = re.compile(r"//([^/?#@]*@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.%-]+)(:\d*)?")


class RecordError(ValueError):
    """Why a record's text does not follow RFC 8460 §3 (one sentence)."""


@dataclass(frozen=True)
class Record:
    """One TLS-RPT record that follows the grammar."""

    text: str
    rua: tuple[str, ...]
    # Fields other than v and rua, as written (RFC 8460 §3: unknown fields are ignored).
    extensions: tuple[tuple[str, str], ...] = ()


def parse(text: str) -> Record:
    """One record's text (a TXT record's strings joined without spaces, RFC 8460 §3) by the
    grammar above; :class:`RecordError` says what is wrong."""
    if not text.startswith(VERSION):
        raise RecordError(f"it does not begin with {VERSION} (case-sensitive)")
    rest = text[len(VERSION) :]
    if not rest.strip(" \t"):
        raise RecordError("it has no rua field after the version")
    if not _DELIM.match(rest):
        raise RecordError(f"{VERSION} is not followed by ';'")
    fields = _DELIM.split(rest)[1:]
    if fields and fields[-1] == "":
        fields.pop()  # one trailing delimiter is allowed
    rua: list[str] = []
    extensions: list[tuple[str, str]] = []
    seen_rua = False
    for field in fields:
        if field == "":
            raise RecordError("it has an empty field (two ';' in a row)")
        name, eq, value = field.partition("=")
        if not eq:
            raise RecordError(f"the field {field!r} is not name=value")
        if name == "rua":
            seen_rua = True
            rua += _uris(value)
        elif not _EXT_NAME.match(name):
            raise RecordError(f"the field name {name!r} is not a valid extension name")
        elif not _EXT_VALUE.match(value):
            raise RecordError(
                f"the value of {name} ({value!r}) is empty or has a space, '=', ';' or a "
                "control character"
            )
        else:
            extensions.append((name, value))
    if not seen_rua:
        raise RecordError("it has no rua field (required: where senders send reports)")
    return Record(text, tuple(rua), tuple(extensions))


def _uris(value: str) -> list[str]:
    if value.strip(" \t") == "":
        raise RecordError("its rua field is empty")
    out = []
    for uri in re.split(rf"{_WSP},{_WSP}", value):
        out.append(_uri(uri))
    return out


def _uri(uri: str) -> str:
    if uri == "":
        raise RecordError("its rua field has an empty URI (a stray ',')")
    if not _URI_CHARS.match(uri):
        raise RecordError(
            f"the rua URI {uri!r} has characters a URI cannot carry unencoded (space, '!', "
            "',', ';', non-ASCII: percent-encode them)"
        )
    m = _SCHEME.match(uri)
    if m is None:
        raise RecordError(f"the rua URI {uri!r} has no scheme (mailto: or https:)")
    scheme, rest = m.group(1).lower(), uri[m.end() :]
    if scheme not in SCHEMES:
        raise RecordError(
            f"the rua URI {uri!r} has the scheme {m.group(1)}: senders report only to "
            "mailto: and https: URIs"
        )
    if scheme == "mailto":
        address = rest.split("?", 1)[0]
        local, at, host = address.rpartition("@")
        if not at or not local or not host:
            raise RecordError(f"the rua URI {uri!r} names no mail address (mailto:user@host)")
    else:
        authority = _HTTPS_AUTHORITY.match(rest)
        if authority is None or not authority.group(2).strip("."):
            raise RecordError(f"the rua URI {uri!r} names no host (https://host/path)")
    return uri


def txt_texts(answer: Answer) -> list[str]:
    """Each TXT record's strings joined without spaces (RFC 8460 §3, as RFC 7208 §3.3), in
    the RRset's order; bytes that are not ASCII are kept as U+FFFD, so they fail the grammar."""
    if answer.rrset is None:
        return []
    out = []
    for rd in answer.rrset:
        strings = getattr(rd, "strings", ())
        out.append(b"".join(strings).decode("ascii", "replace"))
    return out


State = Literal["valid", "missing", "invalid", "unreadable"]


@dataclass(frozen=True)
class Policy:
    """What senders make of a domain's ``_smtp._tls`` TXT RRset (RFC 8460 §3)."""

    state: State
    record: Record | None = None  # the one record, when valid
    # The texts that begin with v=TLSRPTv1 (or look as if they meant to), as published.
    candidates: tuple[str, ...] = ()
    problem: str = ""  # why not valid (invalid, unreadable)


def policy(texts: Iterable[str]) -> Policy:
    """§3's selection over one TXT RRset's texts: records that do not begin with
    ``v=TLSRPTv1;`` are discarded; none left is "missing", more than one or one that breaks
    the grammar "invalid". A record that looks like TLS-RPT but senders discard (another
    case, no ';' after the version) is "invalid" too, as it is surely meant to be one."""
    texts = list(texts)
    meant = [t for t in texts if t.lstrip(" \t").lower().startswith("v=tlsrpt")]
    chosen = [t for t in meant if re.match(rf"{re.escape(VERSION)}{_WSP};", t)]
    if len(chosen) > 1:
        return Policy("invalid", None, tuple(chosen), f"{len(chosen)} TXT records begin with "
                      f"{VERSION}: senders must then assume there is no TLS-RPT policy "
                      "(RFC 8460 §3); keep one")  # fmt: skip
    if not chosen:
        if not meant:
            return Policy("missing")
        text = meant[0]
        try:
            parse(text)
            why = "it does not begin with exactly 'v=TLSRPTv1;'"
        except RecordError as exc:
            why = str(exc)
        return Policy("invalid", None, tuple(meant), f"{why}, so senders discard it")
    try:
        return Policy("valid", parse(chosen[0]), tuple(chosen))
    except RecordError as exc:
        return Policy("invalid", None, tuple(chosen), str(exc))


# A monitor reports the same cached Answer object every cycle (nothing changes an Answer
# once made): its policy and owner text are worked out once (dane_monitor._memo).
_read: ByIdentity[tuple[Policy, str]] = ByIdentity(2048)


def _reading(answer: Answer) -> tuple[Policy, str]:
    return _read(answer, lambda a: (_from_answer(a), a.qname.to_text()))


def from_answer(answer: Answer) -> Policy:
    """The policy a sender finds in this lookup. A failed lookup (bogus, SERVFAIL,
    timeout) is "unreadable": validating senders get no record from it."""
    return _reading(answer)[0]


def _from_answer(answer: Answer) -> Policy:
    if answer.status == Status.BOGUS or answer.kind == Kind.ERROR:
        why = answer.reason or answer.kind.value
        detail = f": {answer.detail}" if answer.detail else ""
        return Policy("unreadable", problem=f"{why}{detail}")
    if answer.kind != Kind.POSITIVE:
        return Policy("missing")
    return policy(txt_texts(answer))


def owner(domain: str) -> str:
    """The TXT owner name senders look up for a mail domain (with the final dot)."""
    return f"_smtp._tls.{domain.rstrip('.')}."


def to_dict(answer: Answer) -> dict[str, Any]:
    """The ``tlsrpt`` key of the domain JSON (docs/json.md)."""
    p, name = _reading(answer)
    return {
        "name": name,
        "status": answer.status.value,
        "state": p.state,
        "record": p.record.text if p.record is not None else None,
        "rua": list(p.record.rua) if p.record is not None else [],
        "records": list(p.candidates),
        "problem": p.problem or None,
    }


def findings(d: Any, mail: bool) -> list[Finding]:
    """The ``tlsrpt-*`` findings of a domain check (``d``: its :class:`evidence.Domain`);
    ``mail``: the domain takes mail (MX hosts, or implicit MX), else nothing is said."""
    answer = d.tlsrpt
    if answer is None or d.mx_only or not mail:
        return []
    where = Place(domain=d.target)
    p, name = _reading(answer)
    if p.state == "missing":
        return [finding("tlsrpt-missing", I, f"no TLS-RPT policy at {name} (RFC 8460): senders "
                        "that report failed TLS sessions (large mailbox providers do) have "
                        f'nowhere to send them; publish e.g. {name} IN TXT "v=TLSRPTv1; '
                        f'rua=mailto:tlsrpt@{d.target.rstrip(".")}"', where=where)]  # fmt: skip
    if p.state == "invalid":
        return [finding("tlsrpt-invalid", W, f"the TLS-RPT policy at {name} is malformed: "
                        f"{p.problem}; senders send no reports until it follows RFC 8460 §3",
                        record="; ".join(p.candidates) or None, where=where)]  # fmt: skip
    if p.state == "unreadable":
        if answer.status != Status.BOGUS and not d.resolver_ok:
            return []  # our resolver, not the domain: the other lookups' findings say so
        return [finding("tlsrpt-unreadable", W, f"the TLS-RPT policy at {name} cannot be read "
                        f"({p.problem}): validating senders get no policy, so send no "
                        "reports; fix the zone's signatures or servers", where=where)]  # fmt: skip
    return []
