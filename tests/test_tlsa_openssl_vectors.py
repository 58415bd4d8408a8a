"""OpenSSL's DANE test vectors (test/danetest.in, test/dane-cross.in) against our matcher.

The files and their format are described in /work/shared/vectors/openssl-danetest/README.md.
We parse them the way OpenSSL's driver (test/danetest.c) does: a header of five integers,
exactly <TLSA-count> record lines taken as they are, then <cert-count> PEM certificates with
any non-PEM text skipped (this is what makes the extra record lines of cases 43-46 of the
3.3 file harmless). Cases are numbered by counting headers.

Expectations, with SMTP (RFC 7672) semantics:
* every case whose records are all usage 2/3 gives OpenSSL's verify result
  (0: authenticated, 62: ta-name-mismatch, 65: tlsa-mismatch) and OpenSSL's match depth;
  except that DANE-EE never checks names (RFC 7672 §3.1.1, OpenSSL's
  DANE_FLAG_NO_DANE_EE_NAMECHECKS), so the one case run with DANE-EE name checks on and
  expecting 62 (3.3 #54) must authenticate at depth 0;
* every case with usage 0/1 (PKIX) records has no usable record for SMTP.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest

from dane_monitor.tlsa import TLSARecord, authenticate

VECTORS = Path("/work/shared/vectors/openssl-danetest")

#: (file, reference name): the two runs of OpenSSL's test/recipes/80-test_dane.t.
FILES = (("danetest-3.3.in", "example.com"), ("dane-cross.in", "server.example"))

VERIFY_OK, HOSTNAME_MISMATCH, DANE_NO_MATCH = 0, 62, 65
FAILURE_FOR = {
    VERIFY_OK: None,
    HOSTNAME_MISMATCH: "ta-name-mismatch",
    DANE_NO_MATCH: "tlsa-mismatch",
}


@dataclass(frozen=True)
class Case:
    file: str
    number: int
    reference: str
    nonamechecks: int
    want_result: int
    want_depth: int
    records: tuple[TLSARecord, ...]
    chain: tuple[bytes, ...]

    @property
    def id(self) -> str:
        return f"{self.file.removesuffix('.in')}#{self.number}"

    @property
    def pkix_only(self) -> bool:
        return all(r.usage in (0, 1) for r in self.records)

    @property
    def dane_only(self) -> bool:
        return all(r.usage in (2, 3) for r in self.records)

    @property
    def dane_ee_namecheck(self) -> bool:
        """Run with DANE-EE name checks on, failing on them: SMTP does not check (§3.1.1)."""
        return (
            self.nonamechecks == 0
            and self.want_result == HOSTNAME_MISMATCH
            and all(r.usage == 3 for r in self.records)
        )

    @property
    def smtp_expectation(self) -> tuple[int, int]:
        """(verify result, depth) an RFC 7672 client must give for a usage-2/3 case."""
        if self.dane_ee_namecheck:
            return VERIFY_OK, self.want_depth
        return self.want_result, self.want_depth


def _pem_certificates(lines: list[str], start: int, count: int) -> tuple[list[bytes], int]:
    """Read ``count`` PEM certificates from ``lines[start:]``, skipping text around them."""
    certs: list[bytes] = []
    i = start
    while len(certs) < count:
        if i >= len(lines):
            raise ValueError(f"expected {count} certificates from line {start + 1}")
        if not lines[i].startswith("-----BEGIN "):
            i += 1
            continue
        label = lines[i].removeprefix("-----BEGIN ").removesuffix("-----")
        if label not in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
            raise ValueError(f"line {i + 1}: unexpected PEM label {label!r}")
        body = []
        i += 1
        while not lines[i].startswith("-----END "):
            body.append(lines[i])
            i += 1
        certs.append(base64.b64decode("".join(body), validate=True))
        i += 1
    return certs, i


def parse_vectors(name: str, reference: str) -> list[Case]:
    lines = [line.rstrip() for line in (VECTORS / name).read_text("ascii").split("\n")]
    cases: list[Case] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line or line.startswith("#"):
            continue
        header = [int(field) for field in line.split()]
        if len(header) != 5:
            raise ValueError(f"{name}:{i}: a header has 5 integers: {line!r}")
        tlsa_count, cert_count, nonamechecks, want_result, want_depth = header
        records = tuple(TLSARecord.from_text(text) for text in lines[i : i + tlsa_count])
        i += tlsa_count
        chain, i = _pem_certificates(lines, i, cert_count)
        cases.append(
            Case(
                name,
                len(cases) + 1,
                reference,
                nonamechecks,
                want_result,
                want_depth,
                records,
                tuple(chain),
            )
        )
    return cases


def _all_cases() -> list[Case]:
    if not VECTORS.is_dir():
        return []
    return [case for name, ref in FILES for case in parse_vectors(name, ref)]


CASES = _all_cases()
DANE_CASES = [c for c in CASES if c.dane_only]
PKIX_CASES = [c for c in CASES if not c.dane_only]

pytestmark = pytest.mark.skipif(not CASES, reason=f"no OpenSSL vectors in {VECTORS}")


def test_the_files_parse_as_openssl_reads_them() -> None:
    by_file = {name: [c for c in CASES if c.file == name] for name, _ in FILES}
    assert len(by_file["danetest-3.3.in"]) == 54
    assert len(by_file["dane-cross.in"]) == 1
    # Cases 1-22 and 43-54 of the 3.3 file are usage 2/3 only, plus the dane-cross case.
    assert [c.number for c in DANE_CASES if c.file == "danetest-3.3.in"] == [
        *range(1, 23),
        *range(43, 55),
    ]
    assert len(DANE_CASES) == 35
    # No case mixes PKIX and DANE usages, so "PKIX" cases have no usable record at all.
    assert all(c.pkix_only for c in PKIX_CASES)
    # The TLSA count is honoured: cases 43-46 have an extra record line that is not loaded.
    assert all(
        len(c.records) == 1 for c in CASES if c.file == "danetest-3.3.in" and 43 <= c.number <= 46
    )
    # The one DANE-EE name-check case SMTP overrides is 3.3 #54 (the README's case 50).
    assert [c.id for c in CASES if c.dane_only and c.dane_ee_namecheck] == ["danetest-3.3#54"]


@pytest.mark.parametrize("case", DANE_CASES, ids=lambda c: c.id)
def test_dane_case_gives_openssl_outcome(case: Case) -> None:
    want_result, want_depth = case.smtp_expectation
    result = authenticate(case.records, case.chain, [case.reference])
    assert (result.failure, result.depth) == (FAILURE_FOR[want_result], want_depth), result.detail
    assert result.authenticated == (want_result == VERIFY_OK)
    assert not result.unusable
    assert not result.ignored_by_agility


@pytest.mark.parametrize("case", PKIX_CASES, ids=lambda c: c.id)
def test_pkix_case_has_no_usable_records(case: Case) -> None:
    result = authenticate(case.records, case.chain, [case.reference])
    assert not result.authenticated
    assert result.failure == "no-usable-records"
    assert result.depth == -1
    assert result.unusable == [(r, "pkix-usage") for r in case.records]


def test_reference_name_with_final_dot_and_upper_case_is_the_same() -> None:
    case = next(c for c in DANE_CASES if c.id == "danetest-3.3#17")
    assert authenticate(case.records, case.chain, ["EXAMPLE.com."]).authenticated


def test_a_ta_case_fails_for_another_reference_name() -> None:
    case = next(c for c in DANE_CASES if c.id == "danetest-3.3#19")  # 2 0 1 on the Root CA
    result = authenticate(case.records, case.chain, ["example.net"])
    assert (result.failure, result.depth) == ("ta-name-mismatch", 2)
