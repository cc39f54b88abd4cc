"""The studio over HTTP, as the page uses it: a real server (uvicorn) on the shipped model.
Uploads refused with reasons, two takes at once, streaming audio while a take is made, the
server answering during generation, exports, requests from other sites refused, and the
server killed mid-take (`sidlive studio` as a process) with the library intact after."""
from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from sidlive.control.params import SAMPLING_DEFAULTS
from sidlive.frames import load_regs
from sidlive.studio.sources import MAX_UPLOAD_BYTES

from .conftest import Client

TAKE = {"kind": "new", "source": "loop:dojo", "start": 0, "end": 150}


def test_state_has_the_shared_defaults_and_the_limits(running):
    st, s = running.client.get("/api/state")
    assert st == 200 and s["model"]["name"] == "default" and s["model"]["composers"][0] == "any"
    assert {k: v["default"] for k, v in s["controls"].items()} == SAMPLING_DEFAULTS
    assert s["limits"]["upload_bytes"] == MAX_UPLOAD_BYTES and s["model_loading"] is False
    assert running.client.get("/")[0] == 200 and running.client.get("/static/main.js")[0] == 200
    st, r = running.client.post("/api/model", {"path": "/etc/passwd"})
    assert st == 400 and r["error"].startswith("field path: '/etc/passwd' is not one of the studio's models")


def test_uploads_are_refused_with_reasons_and_nothing_is_kept(running, tunes):
    c = running.client
    st, r = c.call("POST", "/api/sources/upload?name=big.regs", raw=bytes(MAX_UPLOAD_BYTES + 1))
    assert st == 413 and "big.regs" in r["error"] and f"{MAX_UPLOAD_BYTES:,}" in r["error"]
    st, r = c.call("POST", "/api/sources/upload?name=picture.sid", raw=tunes["picture"].read_bytes())
    assert st == 400 and "picture.sid" in r["error"] and "magic" in r["error"]
    st, r = c.call("POST", "/api/sources/upload?name=hang.sid", raw=tunes["hang"].read_bytes())
    assert st == 200
    st, roll = c.get(f"/api/sources/roll?key={r['key']}")
    assert st == 400 and "hang.sid: subtune 1: init_timeout" in roll["error"]
    assert [s["name"] for s in running.studio.library.sources()] == ["hang.sid"]


def test_two_takes_at_once_stream_while_the_server_answers(running):
    c = running.client
    results = {}

    def make(i):
        results[i] = c.post("/api/takes", {**TAKE, "length_s": 12, "seed": 100 + i})

    threads = [threading.Thread(target=make, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(r[1][0]["id"] for r in results.values())
    jobs = c.get("/api/poll?since=-1")[1]["jobs"]
    assert sorted(j["take_id"] for j in jobs) == ids and max(j["ahead"] for j in jobs) == 1
    # audio streams out while the first take is made; the server keeps answering meanwhile
    first = ids[0]
    pcm, latencies = b"", []
    while True:
        t = time.perf_counter()
        c.get("/api/state")
        latencies.append(time.perf_counter() - t)
        st, (data, h) = c.get(f"/api/audio/take-{first}?from={len(pcm) // 2}")
        assert st == 200
        pcm += data
        if h["x-done"] == "1" and len(pcm) // 2 == int(h["x-total"]):
            break
    for tid in ids:
        assert c.wait_take(tid)["status"] == "done"
    wav = running.studio.library.wav_path(first).read_bytes()
    assert pcm == wav[44:]                                 # what streamed is what the library keeps
    assert statistics.median(latencies) < 0.25 and max(latencies) < 2.0, latencies
    a, b = (running.studio.library.take_frames(t).regs for t in ids)
    assert len(a) == len(b) == round(12 * 50.1245) and not np.array_equal(a, b)


def test_exports_and_a_bit_identical_remake(running):
    c = running.client
    tid = c.post("/api/takes", {**TAKE, "length_s": 4, "seed": 5, "keep_voices": [2]})[1][0]["id"]
    assert c.wait_take(tid)["status"] == "done"
    st, (sid, h) = c.get(f"/api/takes/{tid}/export/sid")
    assert st == 200 and sid[:4] == b"PSID" and f"-{tid}.sid" in h["content-disposition"]
    st, (regs, _) = c.get(f"/api/takes/{tid}/export/regs")
    assert regs == (running.studio.library.take_dir(tid) / "take.regs").read_bytes()
    st, (txt, _) = c.get(f"/api/takes/{tid}/export/txt")
    assert txt.decode().splitlines()[-1] == "<end>" and len(txt.decode().splitlines()) == 201   # 4 s = 200 frames, then <end>
    st, (wav, _) = c.get(f"/api/takes/{tid}/export/wav")
    assert wav[:4] == b"RIFF"
    st, r = c.get(f"/api/takes/{tid}/export/mp3")
    assert st == 400 and "sid, wav, regs, txt" in r["error"]
    st, v = c.post(f"/api/takes/{tid}/verify")
    assert st == 200 and v["identical"] and v["frames"] == 200
    st, r = c.post("/api/takes", {**TAKE, "temperature": 7})
    assert st == 400 and r["error"] == "field temperature: 7.0 is out of range 0.1..2.0"
    st, r = c.post("/api/takes", {**TAKE, "source": "loop:nosuch"})
    assert st == 404 and "nosuch" in r["error"]


def test_continue_rename_search_and_delete(running):
    c = running.client
    tid = c.post("/api/takes", {**TAKE, "length_s": 2, "seed": 77})[1][0]["id"]
    assert c.wait_take(tid)["status"] == "done"
    st, r = c.post("/api/takes", {"kind": "continue", "take": tid, "length_s": 2})
    cont = r[0]["id"]
    assert st == 200 and c.wait_take(cont)["status"] == "done"
    parent = running.studio.library.take_frames(tid).regs
    more = running.studio.library.take_frames(cont).regs
    assert len(more) == len(parent) + 100 and np.array_equal(more[:len(parent)], parent)
    assert c.post(f"/api/takes/{cont}/verify")[1]["identical"] is True
    st, t = c.call("PATCH", f"/api/takes/{cont}", {"name": "the long one", "starred": True})
    assert st == 200 and t["name"] == "the long one" and t["starred"]
    assert [x["id"] for x in c.get("/api/takes?q=long%20one")[1]] == [cont]
    assert [x["id"] for x in c.get("/api/takes?seed=77")[1]] == [tid]
    assert cont in [x["id"] for x in c.get("/api/takes?starred=1&composer=any")[1]]
    st, r = c.get("/api/takes?seed=abc")
    assert st == 400 and "field seed" in r["error"]
    st, r = c.call("PATCH", f"/api/takes/{cont}", {"starred": "yes"})
    assert st == 400 and r["error"] == "field starred: 'yes' is not true or false"
    assert c.call("DELETE", f"/api/takes/{cont}")[0] == 200
    assert c.get(f"/api/takes/{cont}")[0] == 404 and not running.studio.library.take_dir(cont).exists()
    st, r = c.post("/api/takes", {"kind": "branch", "take": tid, "at": 10_000})
    assert st == 400 and r["error"] == "field at: 10000 is out of range 1..99"


def test_other_sites_are_refused(running):
    c = running.client
    st, r = c.get("/api/state", headers={"Host": "evil.example:80"})
    assert st == 403 and "evil.example" in r["error"]
    st, r = c.post("/api/takes", TAKE, headers={"Origin": "http://evil.example"})
    assert st == 403 and "evil.example" in r["error"]


def _start(library, env):
    proc = subprocess.Popen([sys.executable, "-m", "sidlive.commands.studio", "--port", "0", "--library", str(library)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        c = Client(m.group(1))
        deadline = time.monotonic() + 300
        while c.get("/api/state")[1]["model_loading"] and time.monotonic() < deadline:
            time.sleep(0.1)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, c


def test_a_server_killed_mid_take_leaves_the_library_intact(tmp_path, xdg):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc, c = _start(tmp_path / "lib", env)
    try:
        kept = c.post("/api/takes", {**TAKE, "length_s": 3, "seed": 1})[1][0]["id"]
        assert c.wait_take(kept)["status"] == "done"
        frames_before = load_regs(tmp_path / "lib" / "takes" / str(kept) / "take.regs").regs
        long = c.post("/api/takes", {**TAKE, "length_s": 40, "seed": 2})[1][0]["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = c.get("/api/poll?since=-1")[1]["jobs"]
            if jobs and jobs[0]["frames_done"] > 0:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, c = _start(tmp_path / "lib", env)
    try:
        st, s = c.get("/api/state")
        assert s["interrupted"] == [long]
        takes = {t["id"]: t for t in c.get("/api/takes")[1]}
        assert takes[kept]["status"] == "done" and takes[long]["status"] == "interrupted"
        assert "regenerate" in takes[long]["error"]
        st, (wav, _) = c.get(f"/api/takes/{kept}/export/wav")
        assert st == 200 and len(wav) > 44
        assert np.array_equal(load_regs(tmp_path / "lib" / "takes" / str(kept) / "take.regs").regs, frames_before)
        st, again = c.post("/api/takes", {"kind": "regenerate", "take": long})       # finished from its recipe
        assert st == 200 and again[0]["id"] == long
        assert c.wait_take(long, timeout_s=240)["status"] == "done"
        assert c.post(f"/api/takes/{long}/verify")[1]["identical"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode is not None


def test_the_command_refuses_bad_options_with_reasons(tmp_path, capsys):
    from sidlive.commands import studio as cmd
    from sidlive.commands.cli import COMMANDS
    from sidlive.studio.server import warn_if_exposed
    assert COMMANDS["studio"][0] == "sidlive.commands.studio"
    assert cmd.main(["--port", "70000"]) == 2
    assert "--port 70000 is out of range 0..65535" in capsys.readouterr().err
    (tmp_path / "afile").write_text("not a folder")
    assert cmd.main(["--library", str(tmp_path / "afile"), "--port", "0"]) == 1
    assert "afile" in capsys.readouterr().err
    warn_if_exposed("0.0.0.0")
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err
    warn_if_exposed("127.0.0.1")
    assert capsys.readouterr().err == ""
