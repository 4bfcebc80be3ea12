"""Generate a commented policy YAML for a model's classes (``egw policy init``).

Class names are matched to categories (voip, streaming, chat, ...) by their words:
``vpn_voip``, ``VideoCall``, ``skype_chat``, ``file-transfer``, ``BitTorrent`` ... .
Generic words (chat, audio, file, torrent) win over application names (skype,
netflix), longer phrases over shorter ones; anything unrecognised gets best effort.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from classifier.bundle import UNKNOWN

PROFILES = ("smart-home", "strict")
DEFAULT_UPLINK_KBPS = 20000
# The classes of the default model (classifier/models/default/labels.json).
DEFAULT_LABELS = ["chat", "email", "file_transfer", "p2p", "streaming", "voip"]

# (category, tier, patterns): tier 1 generic words, tier 2 application names.
_SYNONYMS: list[tuple[str, int, tuple[str, ...]]] = [
    ("voip", 1, ("voip", "voice", "call", "calls", "audio call", "video call", "videocall",
                 "voice call", "audio", "conferencing", "conference", "meeting", "telephony",
                 "sip", "rtp", "webrtc", "vo ip")),
    ("gaming", 1, ("gaming", "game", "games", "online gaming")),
    ("streaming", 1, ("streaming", "stream", "video", "video streaming", "vod", "iptv",
                      "music", "radio", "media", "tv", "live")),
    ("chat", 1, ("chat", "im", "instant messaging", "messaging", "message", "messages",
                 "messenger", "irc", "xmpp")),
    ("email", 1, ("email", "e mail", "mail", "smtp", "imap", "imaps", "pop3", "pop",
                  "webmail")),
    ("file_transfer", 1, ("file transfer", "filetransfer", "file", "files", "ftp", "ftps",
                          "sftp", "scp", "transfer", "download", "upload", "backup", "sync",
                          "cloud storage", "storage")),
    ("p2p", 1, ("p2p", "peer to peer", "peer2peer", "torrent", "bittorrent", "edonkey",
                "emule", "gnutella")),
    ("web", 1, ("web", "browsing", "http", "https", "browser")),
    ("voip", 2, ("skype", "zoom", "teams", "facetime", "hangouts", "webex", "jitsi")),
    ("streaming", 2, ("netflix", "youtube", "spotify", "vimeo", "twitch", "hulu",
                      "disney", "deezer", "plex", "primevideo")),
    ("chat", 2, ("whatsapp", "telegram", "signal", "aim", "icq", "slack", "wechat")),
    ("email", 2, ("gmail", "outlook", "thunderbird")),
    ("file_transfer", 2, ("dropbox", "gdrive", "onedrive", "icloud", "nextcloud")),
    ("p2p", 2, ("utorrent", "vuze", "qbittorrent", "transmission")),
]

_TABLE = sorted(
    ((tuple(p.split()), cat, tier) for cat, tier, pats in _SYNONYMS for p in pats),
    key=lambda t: (t[2], -len(t[0])))


def _tokens(label: str) -> list[list[str]]:
    plain = [t for t in re.split(r"[^0-9a-z]+", label.lower()) if t]
    camel = [t.lower() for t in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+[a-z]*", label)]
    return [plain, camel] if camel != plain else [plain]


def categorize(label: str) -> str | None:
    """``"vpn_voip"`` -> ``"voip"``, ``"FileTransfer"`` -> ``"file_transfer"``, else None."""
    compact = re.sub(r"[^0-9a-z]", "", label.lower())
    variants = _tokens(label)
    for pattern, cat, _tier in _TABLE:
        if "".join(pattern) == compact:
            return cat
        n = len(pattern)
        for toks in variants:
            if any(tuple(toks[i:i + n]) == pattern for i in range(len(toks) - n + 1)):
                return cat
    return None


@dataclass(frozen=True)
class _Entry:
    dscp: str
    idle: int
    action: str = "allow"
    rate_pct: int | None = None     # of the uplink
    scope: str = "class"
    why: str = ""
    min_confidence: float | None = None


#: Confidence floors of the classes that get priority, derived for the embedded default model
#: on validation sessions by benchmarks/min_confidence.py (docs/results/min_confidence.json:
#: the lowest confidence at which the class's labels are right 90 % of the time);
#: tests/unit/test_policy_min_confidence.py keeps them and the shipped policies equal to it.
MIN_CONFIDENCE = {"voip": 0.6, "streaming": 0.85}


def _profile(profile: str) -> dict[str | None, _Entry]:
    sh = {
        "voip": _Entry("EF", 30, min_confidence=MIN_CONFIDENCE["voip"], rate_pct=15, scope="session",
                       why="voice/video calls: expedited forwarding, first on the uplink "
                           "(only when the model is confident enough that its voip labels are "
                           "right 90% of the time; each call policed so a mislabelled bulk flow "
                           "cannot fill the priority queue)"),
        "gaming": _Entry("CS4", 30, why="online games: low latency"),
        "streaming": _Entry("AF41", 60, min_confidence=MIN_CONFIDENCE["streaming"],
                            why="video/music streaming: high priority, may borrow "
                                "(only when the model's streaming labels are right 90% of "
                                "the time at that confidence)"),
        "chat": _Entry("AF21", 120, why="chat: interactive, small"),
        "email": _Entry("best-effort", 60, why="email: best effort"),
        "web": _Entry("best-effort", 60, why="browsing: best effort"),
        "file_transfer": _Entry("CS1", 60, rate_pct=50, scope="session",
                                why="bulk file transfer: low priority, each session at most "
                                    "half the uplink"),
        "p2p": _Entry("CS1", 60, rate_pct=25, scope="class",
                      why="peer-to-peer: low priority, all p2p together at most a quarter "
                          "of the uplink"),
        None: _Entry("best-effort", 30, why="unlisted classes: best effort"),
        UNKNOWN: _Entry("best-effort", 30, rate_pct=50, scope="session",
                        why="traffic the model does not know (out of distribution, or below a "
                            "class's min_confidence): best effort, never priority, each "
                            "session at most half the uplink"),
    }
    if profile == "smart-home":
        return sh
    if profile == "strict":
        return {
            **sh,
            "streaming": _Entry("AF41", 60, rate_pct=40, scope="class",
                                min_confidence=MIN_CONFIDENCE["streaming"],
                                why="streaming: all streams together at most 40% of the uplink"),
            "file_transfer": _Entry("CS1", 60, rate_pct=25, scope="session",
                                    why="file transfer: each session at most a quarter of "
                                        "the uplink"),
            "p2p": _Entry("CS1", 30, action="drop", why="peer-to-peer: dropped"),
            None: _Entry("best-effort", 30, rate_pct=25, scope="session",
                         why="unlisted classes: best effort, each session at most a quarter "
                             "of the uplink"),
            UNKNOWN: _Entry("best-effort", 30, rate_pct=25, scope="session",
                            why="traffic the model does not know: best effort, each session at "
                                "most a quarter of the uplink"),
        }
    raise ValueError(f"unknown profile {profile!r} (profiles: {', '.join(PROFILES)})")


def _key(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name) and name.lower() not in (
            "y", "n", "yes", "no", "on", "off", "true", "false", "null"):
        return name
    return json.dumps(name)


def _entry_yaml(e: _Entry, uplink: int, indent: str) -> list[str]:
    lines = [f"{indent}action: {e.action}"]
    if e.action == "allow":
        lines.append(f"{indent}dscp: {e.dscp}")
        if e.rate_pct:
            kbps = max(1, uplink * e.rate_pct // 100)
            lines.append(f"{indent}rate_limit: {{kbps: {kbps}, burst_kb: {max(1, kbps // 4)}, "
                         f"scope: {e.scope}}}   # {e.rate_pct}% of the uplink")
        if e.min_confidence is not None:
            lines.append(f"{indent}min_confidence: {e.min_confidence}   # below: the default entry")
    lines.append(f"{indent}idle_timeout: {e.idle}")
    lines.append(f"{indent}hard_timeout: 0")
    return lines


def _wan_yaml(uplink: int) -> list[str]:
    def pct(p: int) -> int:
        return max(1, uplink * p // 100)
    return [
        "# The uplink (WAN port): HTB classes that DSCP marks land in.  The gateway",
        "# installs them with tc on the WAN interface (u32 filters on the DS field).",
        "# rate_kbps is guaranteed, ceil_kbps (default: the uplink) is the most a class",
        "# may borrow, prio 0 borrows first.  Unmapped DSCP values use default_class.",
        "wan:",
        f"  uplink_kbps: {uplink}        # set this to your real upload speed (kbit/s)",
        "  default_class: besteffort",
        "  classes:",
        f"    - {{name: realtime, dscp: [EF, VA, CS5], rate_kbps: {pct(20)}, prio: 0}}",
        f"    - {{name: interactive, dscp: [AF41, AF42, AF43, CS4, AF31, AF32, AF33, CS3], "
        f"rate_kbps: {pct(30)}, prio: 1}}",
        f"    - {{name: standard, dscp: [AF21, AF22, AF23, CS2, AF11, AF12, AF13], "
        f"rate_kbps: {pct(20)}, prio: 2}}",
        f"    - {{name: besteffort, dscp: [CS0], rate_kbps: {pct(20)}, prio: 3}}",
        f"    - {{name: bulk, dscp: [CS1, LE], rate_kbps: {pct(10)}, prio: 4}}",
    ]


DEVICES_EXAMPLE = [
    "# Per-device overrides (by MAC, any case, or IP / CIDR; a list of either works).",
    "# `all` applies to every class of the device, `classes.<name>` to one class;",
    "# entries apply in order, later ones win.  Uncomment and edit:",
    "# devices:",
    "#   - name: blood-pressure-monitor",
    "#     mac: \"aa:bb:cc:dd:ee:01\"",
    "#     all: {dscp: EF, idle_timeout: 120}     # always first on the uplink",
    "#   - name: guest-network",
    "#     ip: 192.168.50.0/24",
    "#     classes:",
    "#       p2p: {action: drop}",
    "#       streaming: {rate_limit: {kbps: 4000, scope: session}}",
    "devices: []",
]


def generate_policy(labels: list[str], profile: str = "smart-home",
                    uplink_kbps: int = DEFAULT_UPLINK_KBPS) -> str:
    """Commented policy YAML for a model whose classes are ``labels``."""
    settings = _profile(profile)
    if uplink_kbps <= 0:
        raise ValueError("uplink_kbps must be positive")
    out = [
        f"# sdn-egw QoS policy ({profile} profile), generated by `egw policy init`.",
        "# Reference: docs/policies.md.  Check after editing: egw policy check FILE --model DIR",
        "#",
        "# Per class: action allow|drop; dscp (EF, AF41, AF21, CS1, best-effort, a number",
        "# 0-63, or keep) marks the packets so the WAN classes below give them priority;",
        "# rate_limit {kbps, burst_kb (kilobits), scope class|session} installs an OpenFlow",
        "# meter that drops above the rate (expect ~10% over on the userspace datapath);",
        "# queue (OpenFlow queue id, ignored by userspace Open vSwitch); idle_timeout and",
        "# hard_timeout (seconds, 0 = none) of the flow rules.",
        "version: 1",
        "description: " + json.dumps(f"{profile} profile for classes: "
                                     f"{', '.join(labels) if labels else '(none)'}"),
        "",
        f"# {settings[None].why}",
        "default:",
        *_entry_yaml(settings[None], uplink_kbps, "  "),
        "",
        f"# {settings[UNKNOWN].why}",
        "unknown:",
        *_entry_yaml(settings[UNKNOWN], uplink_kbps, "  "),
        "",
        "classes:" if any(l not in ("unknown", "default") for l in labels) else "classes: {}",
    ]
    for label in labels:
        if label in ("unknown", "default"):
            continue
        cat = categorize(label)
        e = settings.get(cat) if cat else None
        if e is None:
            e = settings[None]
            out.append(f"  # {label}: not a class this profile knows: best effort")
        else:
            shown = "" if cat == label else f" (recognised as {cat})"
            out.append(f"  # {e.why}{shown}")
        out.append(f"  {_key(label)}:")
        out += _entry_yaml(e, uplink_kbps, "    ")
    out += ["", *_wan_yaml(uplink_kbps), "", *DEVICES_EXAMPLE, ""]
    return "\n".join(out)
