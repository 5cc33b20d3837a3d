"""Serve one video file over RTSP on 127.0.0.1: a test fixture, run by Debian's /usr/bin/python3 with PyGObject.

    /usr/bin/python3 tests/rtsp_serve.py VIDEO [--port 0] [--path stream] [--loop] [--fps F] [--watch-stdin]

Prints ``ready rtsp://127.0.0.1:PORT/PATH`` on stdout once the server listens (PORT is the bound port, so
``--port 0`` picks a free one), exits 0 on SIGTERM or SIGINT, and with ``--watch-stdin`` also when its stdin
closes (so that a test process that dies never leaves a server behind). Only 127.0.0.1 is ever bound.

How it serves: at start the file is decoded (``decodebin``: anything the installed GStreamer plugins read)
and every frame is encoded once to JPEG and kept in memory (so keep served files short); each RTSP media
is ``appsrc ! rtpjpegpay``, fed those frames with timestamps at the frame rate, and the media's sinks send
them out in real time on the pipeline clock. MJPEG is used rather than H.264 because every frame is a key
frame: a client that joins a running stream or reconnects after a restart decodes its very first frame (no
wait for an IDR frame, no missing SPS/PPS, no smeared frames from lost references), a lost packet spoils
one frame only, the decoded frames stay close to the source, and no encoder from plugins-ugly is needed.
RFC 2435 limits the picture to 2040x2040 in multiples of 8 pixels; other sizes are scaled to fit.

The source is not a live source (``is-live`` appsrc stamped on push stalled about 1 open in 15, with the
queue never drained after PLAY); the sinks' clock sync paces it instead, which a client cannot tell apart.

``--loop``: play the file forever and share one media among all clients, so that a client that connects
or reconnects joins the stream where it is (a camera). Without it, every client gets its own playback of
the file from the start, which ends with an end of stream (RTCP BYE) after the last frame.

Transport: by default RTP goes interleaved in the RTSP TCP connection only (what OpenCV's FFmpeg client
asks for first unless OPENCV_FFMPEG_CAPTURE_OPTIONS is set), so the server opens no UDP socket at all.
``--udp`` also offers RTP/RTCP over UDP, from a port range on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from fractions import Fraction

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"rtsp_serve: {message}", file=sys.stderr, flush=True)


def rtp_jpeg_size(width: int, height: int) -> tuple[int, int]:
    """The nearest size RFC 2435 can carry: multiples of 8, at most 2040, aspect kept when scaling down."""
    scale = min(1.0, 2040 / width, 2040 / height)
    return max(8, int(width * scale) // 8 * 8), max(8, int(height * scale) // 8 * 8)


def encode_file(path: str, quality: int, timeout_s: float = 60.0) -> tuple[list[bytes], Gst.Caps, float]:
    """Decode the whole file and JPEG-encode each frame once: (frames, their caps, the file's frame rate)."""
    # First pass learns the decoded size, so that the second can scale to what RTP/JPEG can carry.
    probe = Gst.parse_launch("filesrc name=src ! decodebin ! videoconvert ! appsink name=sink sync=false")
    size = _run_to_first_caps(probe, path, timeout_s)
    width, height = rtp_jpeg_size(*size)
    pipeline = Gst.parse_launch(
        "filesrc name=src ! decodebin ! videoconvert ! videoscale ! "
        f"video/x-raw,format=I420,width={width},height={height} ! "
        f"jpegenc quality={quality} ! appsink name=sink sync=false max-buffers=0"
    )
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    frames: list[bytes] = []
    caps = None
    try:
        pipeline.set_state(Gst.State.PLAYING)
        while True:
            sample = _pull(sink, bus, path, timeout_s)
            if sample is None:
                break
            buffer = sample.get_buffer()
            frames.append(buffer.extract_dup(0, buffer.get_size()))
            caps = caps or sample.get_caps()
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not frames:
        raise RuntimeError(f"{path} has no video frames")
    ok, num, den = caps.get_structure(0).get_fraction("framerate")
    fps = num / den if ok and num > 0 and den > 0 else 0.0
    return frames, caps, fps


def _run_to_first_caps(pipeline: Gst.Element, path: str, timeout_s: float) -> tuple[int, int]:
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    try:
        pipeline.set_state(Gst.State.PLAYING)
        sample = _pull(sink, pipeline.get_bus(), path, timeout_s)
        if sample is None:
            raise RuntimeError(f"{path}: no video frame decoded")
        structure = sample.get_caps().get_structure(0)
        return structure.get_value("width"), structure.get_value("height")
    finally:
        pipeline.set_state(Gst.State.NULL)


def _pull(sink: Gst.Element, bus: Gst.Bus, path: str, timeout_s: float) -> Gst.Sample | None:
    """The next decoded sample, None at the end of the file; raises on a decoding error or a stall."""
    deadline = time.monotonic() + timeout_s
    while True:
        sample = sink.emit("try-pull-sample", Gst.SECOND // 10)
        if sample is not None:
            return sample
        message = bus.pop_filtered(Gst.MessageType.ERROR)
        if message is not None:
            error, debug = message.parse_error()
            raise RuntimeError(f"cannot decode {path}: {error.message} ({debug})")
        if sink.get_property("eos"):
            return None
        if time.monotonic() > deadline:
            raise RuntimeError(f"decoding {path} stalled for {timeout_s:g} s")


class Feeder:
    """Feeds the cached JPEG frames to one media's appsrc whenever it asks, stamped at the frame rate.

    The source is not live: the media's sinks hold every frame until its time on the pipeline clock, so
    frames go out in real time, and a client joining a shared media gets the frames being played now.
    """

    def __init__(self, appsrc: Gst.Element, frames: list[bytes], fps: float, loop: bool) -> None:
        self.frames = frames
        self.duration = int(Gst.SECOND / fps)
        self.fps = fps
        self.loop = loop
        self.index = 0
        appsrc.connect("need-data", self.on_need_data)

    def on_need_data(self, appsrc: Gst.Element, _length: int) -> None:
        if not self.loop and self.index >= len(self.frames):
            appsrc.emit("end-of-stream")
            return
        buffer = Gst.Buffer.new_wrapped(self.frames[self.index % len(self.frames)])
        buffer.pts = int(self.index * Gst.SECOND / self.fps)
        buffer.duration = self.duration
        self.index += 1
        appsrc.emit("push-buffer", buffer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="the file to serve")
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port (printed in the ready line)")
    parser.add_argument("--path", default="stream", help="the mount point: rtsp://127.0.0.1:PORT/PATH")
    parser.add_argument("--loop", action="store_true", help="play forever, one stream shared by all clients")
    parser.add_argument("--fps", type=float, default=0.0, help="frame rate (default: the file's, else 30)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality, 1-100")
    parser.add_argument("--udp", action="store_true", help="offer RTP over UDP too (default: TCP only)")
    parser.add_argument(
        "--udp-ports",
        type=int,
        nargs=2,
        default=(40000, 40999),
        metavar=("FIRST", "LAST"),
        help="the server's UDP port range with --udp",
    )
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    args = parser.parse_args(argv)

    Gst.init(None)
    try:
        frames, caps, file_fps = encode_file(args.video, args.quality)
    except (RuntimeError, GLib.Error) as error:
        log(str(error))
        return 2
    fps = args.fps or file_fps or 30.0
    width, height = caps.get_structure(0).get_value("width"), caps.get_structure(0).get_value("height")
    rate = Fraction(fps).limit_denominator(1001)
    caps = Gst.Caps.from_string(
        f"image/jpeg,width={width},height={height},framerate={rate.numerator}/{rate.denominator}"
    )

    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # A few frames of queue: the feeder runs only a little ahead of the clock.
    factory.set_launch("( appsrc name=src format=time max-buffers=4 block=false ! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(args.loop)
    if args.udp:
        # RTP/RTCP over UDP too; the server's UDP ports come from this pool, so they bind 127.0.0.1 as well.
        pool = GstRtspServer.RTSPAddressPool()
        pool.add_range(HOST, HOST, args.udp_ports[0], args.udp_ports[1], 0)
        factory.set_address_pool(pool)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
    else:
        # RTP interleaved in the RTSP connection only: no UDP socket at all.
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    feeders: dict[int, Feeder] = {}

    def on_media_configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", caps)
        feeders[id(media)] = Feeder(appsrc, frames, fps, args.loop)
        media.connect("unprepared", lambda _media: feeders.pop(id(media), None))

    factory.connect("media-configure", on_media_configure)
    path = "/" + args.path.strip("/")
    server.get_mount_points().add_factory(path, factory)

    main_loop = GLib.MainLoop()

    def quit_loop(*_args: object) -> bool:
        main_loop.quit()
        return False

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, quit_loop)
    if args.watch_stdin:
        GLib.io_add_watch(
            sys.stdin.fileno(),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP,
            lambda fd, _condition: quit_loop() if not _drain(fd) else True,
        )

    try:
        source_id = server.attach(None)
    except GLib.Error as error:
        log(f"cannot listen on {HOST}:{args.port}: {error.message}")
        return 3
    if not source_id:
        log(f"cannot listen on {HOST}:{args.port}")
        return 3
    port = server.get_bound_port()
    log(f"{len(frames)} frames, {width}x{height} at {fps:g} fps, {'looping' if args.loop else 'once'}")
    print(f"ready rtsp://{HOST}:{port}{path}", flush=True)
    main_loop.run()

    # Close every client connection so that clients see the end at once, then stop listening.
    server.client_filter(lambda _server, _client, _data=None: GstRtspServer.RTSPFilterResult.REMOVE)
    GLib.source_remove(source_id)
    log("stopped")
    return 0


def _drain(fd: int) -> bool:
    """Read what is on stdin; False at end of file."""
    try:
        return bool(os.read(fd, 4096))
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
