import pytest

from policies.dscp import DscpError, dscp_name, parse_dscp, parse_dscp_or_keep, tos_byte


@pytest.mark.parametrize("value,expected", [
    ("EF", 46), ("ef", 46), ("AF11", 10), ("AF41", 34), ("af43", 38), ("AF21", 18),
    ("CS0", 0), ("CS1", 8), ("cs7", 56), ("best-effort", 0), ("Best_Effort", 0),
    ("BE", 0), ("default", 0), ("LE", 1), ("VA", 44), (0, 0), (63, 63), ("26", 26),
    ("0x2e", 46),
])
def test_parse_dscp(value, expected):
    assert parse_dscp(value) == expected


@pytest.mark.parametrize("value", ["XF", "AF51", "CS8", "", 64, -1, "64", True, 1.5, None])
def test_parse_dscp_rejects(value):
    with pytest.raises(DscpError):
        parse_dscp(value)


def test_unknown_name_message_lists_choices():
    with pytest.raises(ValueError, match=r"unknown DSCP name 'XF'.*EF, AF11..AF43, CS0..CS7"):
        parse_dscp("XF")


def test_keep_and_names_and_tos():
    assert parse_dscp_or_keep("keep") is None
    assert parse_dscp_or_keep(None) is None
    assert parse_dscp_or_keep("EF") == 46
    assert dscp_name(46) == "EF" and dscp_name(34) == "AF41" and dscp_name(0) == "best-effort"
    assert dscp_name(8) == "CS1" and dscp_name(5) == "5"
    assert tos_byte(46) == 0xB8 and tos_byte(34) == 0x88 and tos_byte(0) == 0
