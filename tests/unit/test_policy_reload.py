import logging
import os

import pytest

from policies import PolicyError
from policies.reload import PolicyHolder, ReloadResult, diff_policies
from policies import parse_policy
from tests.unit.test_policy_schema import BASE


def _write(path, text, bump_ns=0):
    path.write_text(text)
    if bump_ns:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump_ns))


@pytest.fixture
def holder(tmp_path):
    f = tmp_path / "policy.yaml"
    _write(f, BASE)
    return PolicyHolder(f)


def test_initial_load_and_bad_initial_file(tmp_path):
    f = tmp_path / "p.yaml"
    _write(f, BASE.replace("dscp: EF", "dscp: XF"))
    with pytest.raises(PolicyError, match="XF"):
        PolicyHolder(f)


def test_bad_file_keeps_the_running_policy(holder, caplog):
    before = holder.current
    _write(holder.path, BASE.replace("dscp: AF41", "dscp: AF99"), bump_ns=10**9)
    assert holder.changed_on_disk()
    with caplog.at_level(logging.ERROR, logger="policies.reload"):
        r = holder.reload()
    assert isinstance(r, ReloadResult)
    assert r.changed is False and r.diff == []
    assert "classes.streaming.dscp" in r.error and "AF99" in r.error
    assert str(holder.path) in r.error
    assert holder.current is before
    assert "keeping the running policy" in caplog.text
    assert "keeping the running one" in r.summary()
    # not retried until the file changes again
    assert not holder.changed_on_disk()


def test_syntax_error_and_deleted_file_keep_policy(holder):
    before = holder.current
    _write(holder.path, "classes: [\n", bump_ns=10**9)
    assert holder.reload().error
    os.unlink(holder.path)
    assert holder.changed_on_disk()
    r = holder.reload()
    assert r.error and "cannot read" in r.error
    assert holder.current is before


def test_good_file_applies_and_names_changed_classes(holder, caplog):
    new_text = BASE.replace("rate_limit: {kbps: 4000, burst_kb: 800, scope: class}",
                            "rate_limit: {kbps: 2000, burst_kb: 800, scope: class}") \
        .replace("    dscp: AF21\n", "    dscp: CS1\n")
    _write(holder.path, new_text, bump_ns=10**9)
    assert holder.changed_on_disk()
    with caplog.at_level(logging.INFO, logger="policies.reload"):
        r = holder.reload()
    assert r.changed and r.error is None and not r.wan_changed
    by_cls = {c.cls: c for c in r.diff}
    assert set(by_cls) == {"streaming", "chat"}
    assert by_cls["streaming"].fields == (("rate_kbps", 4000, 2000),)
    assert by_cls["chat"].fields == (("dscp", 18, 8),)
    assert holder.current.classes["streaming"].rate_limit.kbps == 2000
    assert "streaming: rate_kbps 4000 -> 2000" in caplog.text
    assert not holder.changed_on_disk()


def test_unchanged_content_is_not_a_change(holder):
    _write(holder.path, BASE, bump_ns=10**9)       # touched, same bytes
    assert not holder.changed_on_disk()
    _write(holder.path, BASE + "# a comment\n", bump_ns=2 * 10**9)
    assert holder.changed_on_disk()
    r = holder.reload()
    assert r.changed is False and r.error is None


def test_reload_if_changed(holder):
    _write(holder.path, BASE.replace("dscp: EF", "dscp: CS5"), bump_ns=10**9)
    assert holder.changed_on_disk()
    assert holder.reload_if_changed().changed
    assert holder.reload_if_changed() is None


def test_wan_change_flagged(holder):
    _write(holder.path, BASE.replace("uplink_kbps: 10000", "uplink_kbps: 12000"), bump_ns=10**9)
    r = holder.reload()
    assert r.changed and r.wan_changed and r.diff == []


def test_diff_policies_added_removed_and_devices():
    old = parse_policy(BASE)
    new = parse_policy(BASE.replace("  chat:\n    dscp: AF21\n    queue: 2\n", "")
                       + "devices:\n  - {name: guest, ip: 10.0.0.0/8, "
                         "classes: {p2p: {action: drop}}}\n")
    d = diff_policies(old, new)
    chat = [c for c in d if c.cls == "chat" and c.device is None]
    assert chat and chat[0].after.cls == "default" and chat[0].before.cls == "chat"
    dev = [c for c in d if c.device == "guest"]
    assert [(c.cls, c.after.action) for c in dev] == [("p2p", "drop")]
    assert "p2p (device guest): action 'allow' -> 'drop'" in str(dev[0])
    assert diff_policies(old, old) == []
