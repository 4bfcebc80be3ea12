import argparse
import json

import pytest

from policies import cli, enforcement_for, load_policy
from policies.generate import DEFAULT_LABELS, PROFILES, categorize, generate_policy
from policies.loader import check_policy_text

ISCX = ["aim_chat", "email", "facebook_audio", "facebook_chat", "ftps", "hangouts_chat",
        "netflix", "scp", "sftp", "skype_file", "spotify", "torrent", "vimeo", "voipbuster",
        "youtube", "vpn_voip", "vpn_p2p", "vpn_email", "VideoCall", "browsing"]


@pytest.mark.parametrize("label,cat", [
    ("voip", "voip"), ("vpn_voip", "voip"), ("VideoCall", "voip"), ("video_call", "voip"),
    ("facebook_audio", "voip"), ("streaming", "streaming"), ("netflix", "streaming"),
    ("chat", "chat"), ("skype_chat", "chat"), ("email", "email"), ("vpn_email", "email"),
    ("file_transfer", "file_transfer"), ("FileTransfer", "file_transfer"),
    ("skype_file", "file_transfer"), ("sftp", "file_transfer"), ("p2p", "p2p"),
    ("BitTorrent", "p2p"), ("vpn-p2p", "p2p"), ("browsing", "web"), ("thermostat", None),
])
def test_categorize(label, cat):
    assert categorize(label) == cat


def _run(argv):
    p = argparse.ArgumentParser(prog="egw")
    cli.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("labels", [DEFAULT_LABELS, DEFAULT_LABELS + ["unknown"], ISCX,
                                    ["weird class", "on", "x:y", "Ünïcode"]])
def test_generated_policy_round_trips_through_check(profile, labels):
    text = generate_policy(labels, profile)
    assert text.startswith("#")
    policy, issues = check_policy_text(text, "gen.yaml", labels)
    assert policy is not None and issues == [], [str(i) for i in issues]
    assert set(policy.classes) == {x for x in labels if x != "unknown"}


def test_generated_defaults_a_home_user_expects():
    text = generate_policy(ISCX + ["thermostat"], "smart-home")
    p, _ = check_policy_text(text, "gen.yaml")
    e = {c: enforcement_for(p, c) for c in ISCX + ["thermostat", "unknown"]}
    assert e["vpn_voip"].dscp == 46 and e["facebook_audio"].dscp == 46
    assert e["netflix"].dscp == 34 and e["aim_chat"].dscp == 18 and e["email"].dscp == 0
    assert e["torrent"].dscp == 8 and e["torrent"].rate_kbps
    assert e["sftp"].dscp == 8 and e["sftp"].rate_kbps and e["sftp"].meter_scope == "session"
    assert e["thermostat"].dscp == 0
    # sessions the model does not know: their own entry, best effort, never priority, policed
    assert e["unknown"].cls == "unknown" and e["unknown"].dscp == 0
    assert e["unknown"].rate_kbps and e["unknown"].meter_scope == "session"
    assert "thermostat: not a class this profile knows" in text
    strict, _ = check_policy_text(generate_policy(DEFAULT_LABELS, "strict"), "s.yaml")
    assert enforcement_for(strict, "p2p").action == "drop"
    assert enforcement_for(strict, "streaming").rate_kbps


def test_uplink_scales_rates():
    p, _ = check_policy_text(generate_policy(DEFAULT_LABELS, uplink_kbps=100000), "g.yaml")
    assert p.wan.uplink_kbps == 100000
    assert sum(c.rate_kbps for c in p.wan.classes) <= 100000
    assert p.classes["p2p"].rate_limit.kbps == 25000
    with pytest.raises(ValueError):
        generate_policy(DEFAULT_LABELS, "nope")


def test_cli_init_then_check_round_trip(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "labels.json").write_text(json.dumps(ISCX))
    out = tmp_path / "policy.yaml"
    assert _run(["policy", "init", "--model", str(model), "--out", str(out)]) == 0
    assert _run(["policy", "check", str(out), "--model", str(model)]) == 0
    assert "OK" in capsys.readouterr().out
    assert set(load_policy(out).classes) == set(ISCX)
    # refuses to overwrite without --force
    with pytest.raises(Exception) as ei:
        _run(["policy", "init", "--model", str(model), "--out", str(out)])
    assert getattr(ei.value, "user_facing", False) and "--force" in str(ei.value)
    assert _run(["policy", "init", "--profile", "strict", "--out", str(out), "--force"]) == 0
    assert enforcement_for(load_policy(out), "p2p").action == "drop"


def test_cli_init_stdout_default_labels(capsys):
    assert _run(["policy", "init"]) == 0
    text = capsys.readouterr().out
    p, issues = check_policy_text(text, "stdout", DEFAULT_LABELS)
    assert p is not None and not issues


def test_cli_check_explains_errors(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "labels.json").write_text(json.dumps(DEFAULT_LABELS))
    f = tmp_path / "bad.yaml"
    f.write_text(generate_policy(DEFAULT_LABELS).replace("  voip:", "  vopi:")
                 .replace("kbps: 5000", "kbps: -5000").replace("dscp: AF41", "dscp: AF45"))
    assert _run(["policy", "check", str(f), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    lines = f.read_text().splitlines()
    vopi = next(n for n, l in enumerate(lines, 1) if "vopi:" in l)
    assert f"{f}:{vopi}:3: classes.vopi: unknown class name 'vopi'" in err
    assert "did you mean 'voip'" in err
    assert "classes.p2p.rate_limit.kbps: must be greater than 0, got -5000" in err
    assert "classes.streaming.dscp: unknown DSCP name 'AF45'" in err
    assert "'voip' has no entry" in err
    assert "4 errors" in err


def test_cli_bad_labels_json(tmp_path):
    (tmp_path / "labels.json").write_text("{not json")
    with pytest.raises(Exception) as ei:
        _run(["policy", "init", "--model", str(tmp_path)])
    assert getattr(ei.value, "user_facing", False) and "labels.json" in str(ei.value)
    with pytest.raises(Exception) as ei:
        _run(["policy", "init", "--model", str(tmp_path / "nowhere")])
    assert getattr(ei.value, "user_facing", False)


def test_cli_show_and_tc(capsys):
    assert _run(["policy", "show", "--mac", "aa:bb:cc:dd:ee:01"]) == 0
    out = capsys.readouterr().out
    assert "voip: allow rate=3000kbit/s" in out and "dscp=46" in out and "[wan: realtime]" in out
    assert _run(["policy", "tc", "--dev", "eth9"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("tc qdisc del dev eth9 root")
    assert "tc qdisc add dev eth9 root handle 1: htb default" in out[1]
