"""The real page in a real browser (Debian's Chromium, headless, through Playwright) against a
real studio server on the shipped model: a musician's session end to end, then bad input.
Screenshots of the main views go to the `shots` folder (printed at the end of the run)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from sidlive.audio.wav import read_wav
from sidlive.c64.dump import dump_tune
from sidlive.live.daemon import LiveConfig, LiveDaemon
from sidlive.measure.soundcheck import envelope_alignment, resid_rate_ratio, sidplayfp_render
from sidlive.paths import DEFAULT_MODEL

T = 90_000   # ms: the slowest step here (a 30 s take on a loaded 2-core machine) takes a few seconds


def ready(page, url):
    page.goto(url)
    page.wait_for_function("document.getElementById('engine-status').textContent === 'ready'", timeout=T)
    page.wait_for_function("document.querySelectorAll('#source-select option').length > 1", timeout=T)


def drag(page, selector, x0, x1, y=0.5):
    box = page.locator(selector).first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (x0 + x1) / 2, box["y"] + box["height"] * y, steps=4)
    page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * y, steps=4)
    page.mouse.up()


def card(page, take_id):
    return page.locator(f'.card[data-take="{take_id}"]')


def wait_done(page, take_id):
    page.wait_for_function(f"""(() => {{ const c = window.studio.cards.get({take_id});
        return c && c.take.status === 'done' && c.roll.frames === c.take.total_frames; }})()""", timeout=T)


def made(page, after=0):
    """The id of the newest take once there is one past `after` (the click's POST and the list refresh are async)."""
    page.wait_for_function(f"Math.max(0, ...window.studio.cards.keys()) > {after}", timeout=T)
    return newest(page)[0]


def newest(page, n=1):
    return page.evaluate(f"[...window.studio.cards.keys()].sort((a, b) => b - a).slice(0, {n})")


def test_a_session_prompt_steer_generate_keep_export_and_play_live(running, browser, tunes, shots, tmp_path):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ready(page, running.url)
    # 1 Prompt: upload a .sid with two subtunes, pick the second, select a fragment, hear it
    page.set_input_files("#upload", str(tunes["two"]))
    page.wait_for_function("!document.getElementById('subtune-label').hidden", timeout=T)
    page.select_option("#subtune-select", "2")
    page.wait_for_function("document.getElementById('source-info').textContent.includes('two loops')", timeout=T)
    n = len(tunes["b"])                                                 # subtune 2 is the second loop
    page.wait_for_function(f"window.studio.prompt.roll.frames === {n}", timeout=T)
    drag(page, "#source-roll", 0.05, 0.85)
    sel = page.evaluate("window.studio.prompt.selection")
    assert abs(sel[0] - 0.05 * n) < 0.03 * n and abs(sel[1] - 0.85 * n) < 0.03 * n, sel
    page.click("#play-fragment")
    page.wait_for_function("window.studioAudio.player.playing && window.studioAudio.player.position() > 4800",
                           timeout=T)                                   # 0.1 s of the fragment played
    page.screenshot(path=str(shots / "prompt.png"))
    page.click("#stop-audio")
    # 2 Steer
    page.uncheck("#seed-random")
    page.fill("#seed", "2024")
    page.locator("#temperature").fill("0.8")
    page.fill("#length", "30")
    page.check("#keep-1")
    # 3 Generate 30 s: playable while it is made (the page measures click -> first audio)
    page.click("#generate")
    page.wait_for_function("Object.keys(window.studioFigures).length > 0", timeout=T)
    (tid,) = newest(page)
    page.wait_for_function(f"window.studio.cards.get({tid}).roll.frames > 0", timeout=T)
    wait_done(page, tid)
    page.wait_for_function(f"window.studioFigures[{tid}].click_to_all_audio_ms !== null", timeout=T)
    fig = page.evaluate(f"window.studioFigures[{tid}]")
    full = page.evaluate(f"""(async () => {{ const f = new window.studioAudio.AudioFeed('take-{tid}');
        const t = performance.now(); await f.load(); return {{...f.stats, ms: performance.now() - t}}; }})()""")
    take = running.client.get(f"/api/takes/{tid}")[1]
    figure = {"take": tid, "seconds": 30, "page": fig, "full_fetch": full,
              "server": {k: take[k] for k in ("engine_s", "render_s", "encode_s")}}
    (shots / "figure-30s.json").write_text(json.dumps(figure, indent=1))
    print("\n30-s figure:", json.dumps(figure))
    assert take["seed"] == 2024 and take["settings"]["temperature"] == 0.8 and take["keep_voices"] == [1]
    assert take["total_frames"] == 1504 and fig["click_to_first_audio_ms"] < fig["click_to_all_audio_ms"]
    # it played as it came (autoplay); play it again from the start, star it
    assert page.evaluate(f"window.studio.playing && window.studio.playing.id === {tid}")
    page.click("#stop-audio")
    c = card(page, tid)
    c.locator(".play").click()
    page.wait_for_function("window.studioAudio.player.position() > 9600", timeout=T)
    c.locator(".star").click()
    page.wait_for_function(f"window.studio.cards.get({tid}).take.starred", timeout=T)
    assert running.studio.library.take(tid)["starred"]
    page.screenshot(path=str(shots / "take.png"))
    c.locator(".play").click()
    # 5 Export .sid: it plays in sidplayfp, and the C64 player gives back the take's frames exactly
    with page.expect_download() as dl:
        c.locator('.exports a[data-fmt="sid"]').click()
    sid = tmp_path / dl.value.suggested_filename
    dl.value.save_as(sid)
    frames = running.studio.library.take_frames(tid)
    assert np.array_equal(dump_tune(sid).regs, frames.regs)
    if shutil.which("sidplayfp"):
        ours, rate = read_wav(running.studio.library.wav_path(tid))
        theirs = sidplayfp_render(sid, 30.0, subtune=1, chip=frames.chip, delay_cycles=0)
        r, _ = envelope_alignment(ours, theirs, rate, b_rate_hz=rate * resid_rate_ratio(rate))
        assert np.abs(theirs.astype(float)).mean() > 50 and r > 0.9, r
    # variations (4 seeds side by side), then branch and continue from the first take
    c.locator(".act-var").click()
    page.wait_for_function("document.querySelectorAll('.group:not(.single) .card').length === 4", timeout=T)
    var_ids = newest(page, 4)
    for v in var_ids:
        wait_done(page, v)
    seeds = {running.client.get(f"/api/takes/{v}")[1]["seed"] for v in var_ids}
    assert len(seeds) == 4 and 2024 not in seeds
    page.locator(".group:not(.single)").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "variations.png"))
    c.locator("canvas").click(position={"x": 200, "y": 40})             # a point on the roll
    c.locator(".act-branch").click()
    page.wait_for_function(f"Math.max(...window.studio.cards.keys()) > {max(var_ids)}", timeout=T)
    (branch,) = newest(page)
    wait_done(page, branch)
    b = running.client.get(f"/api/takes/{branch}")[1]
    assert b["kind"] == "branch" and b["parent"] == tid and b["total_frames"] == 1504 and 0 < b["branch_at"] < 1504
    assert np.array_equal(running.studio.library.take_frames(branch).regs[:b["branch_at"]],
                          frames.regs[:b["branch_at"]])
    assert running.client.post(f"/api/takes/{branch}/verify")[1]["identical"] is True
    c.locator(".act-verify").click()
    page.wait_for_function(f"document.querySelector('.card[data-take=\"{tid}\"] .card-msg').textContent"
                           ".startsWith('identical')", timeout=T)
    # 6 The instrument: a running `sidlive live` takes the prompt selection as its loop, the knobs steer it
    d = LiveDaemon(LiveConfig(model=DEFAULT_MODEL, audio="null", midi="none", osc_port=0, rt_priority=0,
                              loops_dir=running.studio.instrument.target), on_message=lambda m: None).start()
    try:
        page.fill("#live-port", str(d.ports.osc.port))
        page.click("#live-set")
        page.click("#live-send-prompt")
        page.locator("#live").scroll_into_view_if_needed()
        page.locator("#messages .msg button").evaluate_all("bs => bs.forEach((b) => b.click())")   # closed
        knob = page.locator('.knob[data-name="temperature"] svg').bounding_box()
        page.mouse.move(knob["x"] + 29, knob["y"] + 29)
        page.mouse.down()
        page.mouse.move(knob["x"] + 29, knob["y"] - 120, steps=6)       # all the way up
        page.mouse.up()
        page.click('#live .mute[data-voice="2"]')
        page.click("#live-reseed")
        st = d.controls
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (st.state.loop == 0 and st.state.temperature == 2.0
                                                   and st.state.mute_2 and st.state.reseed == 1):
            time.sleep(0.05)
        assert (st.state.loop, st.state.temperature, st.state.mute_2, st.state.reseed) == (0, 2.0, True, 1)
        assert d.library.get(0).regs.shape == (sel[1] - sel[0], 25)
        assert "/sidlive/reseed" in page.inner_text("#live-log")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / "live.png"))
    finally:
        d.stop()
    page.screenshot(path=str(shots / "studio.png"), full_page=True)
    assert not errors, errors


def test_bad_input_gets_a_clear_message_and_nothing_is_lost(running, browser, tunes, shots, pointer_model,
                                                            plain_model):
    models = running.studio.library.root / "models"
    models.mkdir(exist_ok=True)
    (models / "broken.sidm").write_bytes(b"SIDM" + bytes(40))
    shutil.copy(pointer_model, models / "tiny-pointer.sidm")
    shutil.copy(plain_model, models / "tiny-plain.sidm")
    page = browser.new_page()
    ready(page, running.url)
    n_sources = len(running.studio.library.sources())
    msgs = page.locator("#messages")
    page.set_input_files("#upload", str(tunes["picture"]))
    msgs.get_by_text("picture.sid").first.wait_for(timeout=T)
    assert "magic" in msgs.inner_text()
    page.set_input_files("#upload", {"name": "huge.regs", "mimeType": "application/octet-stream",
                                     "buffer": bytes(9 << 20)})
    msgs.get_by_text("huge.regs").first.wait_for(timeout=T)
    assert "over the limit" in msgs.inner_text() and "nothing was uploaded" in msgs.inner_text()
    page.set_input_files("#upload", str(tunes["hang"]))
    msgs.get_by_text("init_timeout").first.wait_for(timeout=T)
    assert len(running.studio.library.sources()) == n_sources + 1      # only the well-formed hang.sid
    # a model that fails to load: said so, the one in use stays; a pointer model shows repetition
    page.select_option("#model-select", label="broken")
    msgs.get_by_text("model failed to load").first.wait_for(timeout=T)
    page.wait_for_function("document.getElementById('model-select').selectedOptions[0].text === 'default'", timeout=T)
    assert not page.is_disabled("#repetition")                  # the shipped model is a pointer model
    page.select_option("#model-select", label="tiny-plain")
    page.wait_for_function("document.getElementById('repetition').disabled", timeout=T)
    page.select_option("#model-select", label="tiny-pointer")
    page.wait_for_function("!document.getElementById('repetition').disabled", timeout=T)
    page.screenshot(path=str(shots / "errors.png"))
    page.select_option("#model-select", label="default")
    page.wait_for_function("!document.getElementById('repetition').disabled", timeout=T)
    # two tabs generating at once: both takes are made, one after the other; each tab sees both
    other = browser.new_page()
    ready(other, running.url)
    for p in (page, other):
        p.select_option("#source-select", "loop:dojo")
        p.fill("#length", "6")
    before = max(running.studio.library.takes(limit=1)[0]["id"], 0) if running.studio.library.takes() else 0
    page.click("#generate")
    other.click("#generate")
    page.wait_for_function(f"[...window.studio.cards.keys()].filter((i) => i > {before}).length === 2", timeout=T)
    ids = sorted(newest(page, 2))
    assert ids[0] > before
    for p in (page, other):
        for tid in ids:
            wait_done(p, tid)
    assert [running.client.get(f"/api/takes/{t}")[1]["status"] for t in ids] == ["done", "done"]
    other.close()
    page.close()


def test_the_page_comes_through_a_server_killed_mid_take(browser, tmp_path, xdg):
    """`sidlive studio` killed while it makes a take: the page says the server is gone, then that it is back
    and which take was interrupted; that take's card regenerates it; the finished take was never touched."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "sidlive.commands.studio", "--port", str(port), "--library", str(tmp_path / "lib")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    page = browser.new_page()
    try:  # the finally ends whichever server process runs then
        url = proc.stdout.readline().split()[2]
        ready(page, url)
        page.select_option("#source-select", "loop:dojo")
        page.fill("#length", "3")
        page.click("#generate")
        first = made(page)
        wait_done(page, first)
        page.fill("#length", "40")
        page.click("#generate")
        long = made(page, first)
        page.wait_for_function(f"window.studio.cards.get({long}).roll.frames > 0", timeout=T)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        page.wait_for_selector("#offline", state="visible", timeout=T)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        page.wait_for_selector("#offline", state="hidden", timeout=T)
        page.locator("#messages").get_by_text(f"take {long} was being made").wait_for(timeout=T)
        c = card(page, long)
        page.wait_for_function(f"window.studio.cards.get({long}).take.status === 'interrupted'", timeout=T)
        assert c.locator(".act-regen").is_visible() and "regenerate" in c.locator(".card-msg").inner_text()
        c.locator(".act-regen").click()
        wait_done(page, long)
        assert page.evaluate(f"window.studio.cards.get({first}).take.status") == "done"
    finally:
        page.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
