# SPDX-License-Identifier: MIT
"""ETRN (RFC 1985): with etrn = "relay" a client in relay_networks gets the
backend's own answer; anyone else, or with etrn off, gets 502 5.5.1 and the
backend never sees the command.  ATRN and TURN are always 502 5.5.1."""

import pytest

from helpers import SENDER, assert_reply
from mxguard import check_config


def etrn_cmds(backend):
    return [x for x in backend.all_commands() if x.upper().startswith("ETRN")]


def test_etrn_relayed_for_relay_networks(backend, make_mx):
    backend.override(r"ETRN ", "250 Queuing started")
    mx = make_mx(config={"etrn": "relay", "relay_networks": ["127.0.0.0/8"]})
    c = mx.connect()
    c.ehlo()
    r = c.cmd("ETRN example.net")
    assert r.lines == ["250 Queuing started"], r  # verbatim
    assert etrn_cmds(backend) == ["ETRN example.net"]
    r = c.cmd("ETRN #queue_name")
    assert_reply(r, 250)
    # Syntax and sequence checks are ours; nothing goes on.
    assert_reply(c.cmd("ETRN bad name"), 501, "5.5.4")
    assert_reply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
    assert_reply(c.cmd("ETRN example.net"), 503, "5.5.1")
    assert etrn_cmds(backend) == ["ETRN example.net", "ETRN #queue_name"]
    c.quit()


def test_etrn_needs_helo(backend, make_mx):
    mx = make_mx(config={"etrn": "relay", "relay_networks": ["127.0.0.0/8"]})
    c = mx.connect()
    assert_reply(c.cmd("ETRN example.net"), 503, "5.5.1")
    assert etrn_cmds(backend) == []


@pytest.mark.parametrize(
    "config",
    [
        {"relay_networks": ["127.0.0.0/8"]},  # etrn off (the default)
        {"etrn": "off", "relay_networks": ["127.0.0.0/8"]},
        {"etrn": "relay"},  # the client is not in relay_networks
        {"etrn": "relay", "relay_networks": ["10.0.0.0/8"]},
    ],
)
def test_etrn_refused(backend, make_mx, config):
    mx = make_mx(config=config)
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd("ETRN example.net"), 502, "5.5.1")
    assert_reply(c.cmd("NOOP"), 250)
    c.quit()
    assert etrn_cmds(backend) == []


@pytest.mark.parametrize("line", ["ATRN example.net", "ATRN", "TURN"])
def test_atrn_turn_refused(backend, make_mx, line):
    mx = make_mx(config={"etrn": "relay", "relay_networks": ["127.0.0.0/8"]})
    c = mx.connect()
    c.ehlo()
    assert_reply(c.cmd(line), 502, "5.5.1")
    c.quit()
    assert not any(x.upper().startswith(("ATRN", "TURN")) for x in backend.all_commands())


def test_etrn_config_checked(make_mx):
    mx = make_mx(config={"etrn": "yes"}, start=False)
    mx.write_config()
    rc, out = check_config(mx.conf_path)
    assert rc == 1 and 'etrn must be "off" or "relay"' in out, out
