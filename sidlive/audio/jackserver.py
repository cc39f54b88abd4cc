"""Start, probe and stop a JACK server (jackd2), and point PortAudio at it.

Used by the tests (a private dummy server: paced audio without a sound card, plus JACK
MIDI ports) and by the daemon to choose between JACK and ALSA.

    with JackServer() as jack:        # jackd -n sidlive-<pid>-<n> -d dummy -r 48000 -p 256
        jack.activate()               # JACK_DEFAULT_SERVER=name; PortAudio rescanned
        ... sounddevice / rtmidi(UNIX_JACK) clients now reach this server ...

Facts this relies on (jackd2 1.9.21): `-n NAME` names the server, clients pick it with
$JACK_DEFAULT_SERVER; the server listens on the unix socket /dev/shm/jack_NAME_UID_0
(connecting to it is a silent readiness probe); JACK_NO_AUDIO_RESERVATION=1 skips the
D-Bus device reservation; JACK_NO_START_SERVER=1 stops libjack clients from spawning a
server. PortAudio opens its JACK host API (one JACK client) in Pa_Initialize, so it only
sees a server that was running then: `rescan_portaudio()` re-initialises it.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_counter = itertools.count()


class JackError(RuntimeError):
    """jackd is missing or failed to start; the message carries its log tail."""


def jackd_path() -> str | None:
    """Path of the jackd executable, or None when it is not installed."""
    return shutil.which("jackd")


def server_name(name: str | None = None) -> str:
    """The JACK server name: the given one, else $JACK_DEFAULT_SERVER, else 'default'."""
    return name or os.environ.get("JACK_DEFAULT_SERVER") or "default"


def socket_path(name: str | None = None) -> Path:
    """The unix socket a JACK server of that name listens on ($JACK_TMP_DIR or /dev/shm)."""
    shm = Path(os.environ.get("JACK_TMP_DIR", "/dev/shm"))
    return shm / f"jack_{server_name(name)}_{os.getuid()}_0"


def jack_running(name: str | None = None) -> bool:
    """True when a JACK server of that name (default: $JACK_DEFAULT_SERVER or 'default')
    accepts connections. Silent and cheap (no libjack client is created)."""
    path = socket_path(name)
    if not path.exists():
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def rescan_portaudio() -> None:
    """Re-initialise PortAudio so it sees JACK servers started or stopped since.
    Close every sounddevice stream first."""
    import sounddevice as sd  # loads PortAudio: optional, so rendering and recording work without it

    sd._terminate()
    sd._initialize()


def portaudio_jack_device(kind: str = "output") -> int | None:
    """Index of PortAudio's default JACK device, or None if PortAudio has no JACK API."""
    import sounddevice as sd  # loads PortAudio: optional, so rendering and recording work without it

    for api in sd.query_hostapis():
        if "JACK" in api["name"]:
            idx = api[f"default_{kind}_device"]
            return idx if idx >= 0 else None
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the thread that started it dies (Linux
    prctl PR_SET_PDEATHSIG), so a crashed test run leaves no jackd behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class JackServer:
    """A private jackd with the dummy driver (paced by a timer, no sound card).

    die_with_parent: jackd gets SIGTERM when the thread that called start() exits (so
    start it from a long-lived thread, e.g. the main one)."""

    def __init__(self, name: str | None = None, rate_hz: int = 48_000, period_frames: int = 256,
                 realtime: bool = False, startup_timeout_s: float = 10.0, die_with_parent: bool = True):
        self.name = name or f"sidlive-{os.getpid()}-{next(_counter)}"
        self.rate_hz = rate_hz
        self.period_frames = period_frames
        self.realtime = realtime
        self.startup_timeout_s = startup_timeout_s
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._saved_env: dict[str, str | None] | None = None

    def command(self) -> list[str]:
        """The jackd command line (dummy driver); JackError when jackd is not installed."""
        exe = jackd_path()
        if exe is None:
            raise JackError("jackd is not installed (Debian: apt-get install jackd2)")
        cmd = [exe, "-n", self.name]
        if not self.realtime:
            cmd.append("--no-realtime")
        return cmd + ["-d", "dummy", "-r", str(self.rate_hz), "-p", str(self.period_frames)]

    def start(self) -> "JackServer":
        """Start jackd and wait until it accepts connections; JackError with its log if it does not."""
        if self.proc is not None:
            return self
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent if self.die_with_parent else None)
        deadline = time.monotonic() + self.startup_timeout_s
        while not jack_running(self.name):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log_tail()
                self.stop()
                raise JackError(f"jackd -n {self.name} did not come up: {log}")
            time.sleep(0.02)
        return self

    def log_tail(self, n_chars: int = 2000) -> str:
        """The last n_chars of jackd's output ("" before start)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-n_chars:]

    def xruns(self) -> dict[str, int]:
        """JACK's xruns so far, from the server's log: by the client it blamed
        ("JackEngine::XRun: client = NAME was not finished"), and "driver" for cycles the
        dummy driver's own timer started late ("JackTimedDriver::Process XRun = N usec":
        no client involved). PortAudio flags every xrun of the graph to its streams as an
        output underflow, whichever part was late."""
        if self._log is None:
            return {}
        self._log.seek(0)
        counts: dict[str, int] = {}
        for line in self._log.read().decode("utf-8", "replace").splitlines():
            if "XRun: client = " in line:
                name = line.split("XRun: client = ", 1)[1].split(" was not finished", 1)[0]
                counts[name] = counts.get(name, 0) + 1
            elif "Driver::Process XRun" in line:
                counts["driver"] = counts.get("driver", 0) + 1
        return counts

    def activate(self, rescan: bool = True) -> None:
        """Point this process's JACK clients (rtmidi, PortAudio) at this server."""
        if self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        if rescan:
            rescan_portaudio()

    def deactivate(self, rescan: bool = True) -> None:
        """Restore the JACK environment variables activate() changed, and rescan PortAudio."""
        if self._saved_env is not None:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = None
        if rescan:
            rescan_portaudio()

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after timeout_s. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        """True while our jackd process lives and accepts connections."""
        return self.proc is not None and self.proc.poll() is None and jack_running(self.name)

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._saved_env is not None:
            self.deactivate()
        self.stop()
