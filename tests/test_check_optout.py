"""A mail domain signed with NSEC3 opt-out and no TLSA record: the absence is not proven.

RFC 5155 §9.2: an opt-out span may hide an unsigned delegation, so a validator cannot tell
"no TLSA here" from "an unsigned subzone here"; Unbound answers insecure, and so do we. The
check says what that means instead of "sign the zone".
"""

from __future__ import annotations

from dane_monitor.world.zones import NSEC3


def test_no_tlsa_in_an_opt_out_span_is_insecure_and_says_why(dane_scenario):
    sc = dane_scenario(tlsa=[], denial=NSEC3(opt_out=True))
    result = sc.check().to_dict()
    [host] = result["hosts"]
    tlsa = next(d for d in host["dns"] if d["type"] == "TLSA")
    assert (tlsa["status"], tlsa["reason"]) == ("insecure", "nsec3-opt-out")
    [finding] = [f for f in host["findings"] if f["code"] == "tlsa-insecure"]
    assert "opt-out" in finding["message"] and "RFC 5155" in finding["message"]
    assert host["verdict"] != "valid"


def test_without_opt_out_the_same_absence_is_proven(dane_scenario):
    sc = dane_scenario(tlsa=[], denial=NSEC3())
    [host] = sc.check().to_dict()["hosts"]
    tlsa = next(d for d in host["dns"] if d["type"] == "TLSA")
    assert (tlsa["status"], tlsa["kind"]) == ("secure", "nxdomain")
    assert host["verdict"] == "no-dane"
