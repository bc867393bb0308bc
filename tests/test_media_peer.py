"""``media.peer``'s audio playout prefetch: the reference clients' aiortc audio receivers
hold 1 packet after a frame before decoding it instead of aiortc's 4 (answer -> first
audible frame 60 ms sooner; bench/RESULTS.md section 6b), set on aiortc's private jitter
buffer, whose shape ``check_playout`` verifies by reading aiortc's source.

Real aiortc peers on 127.0.0.1, a tone (Opus) from one to the other, no bridge: the
receiver's own jitter buffer releases its first frame at the (prefetch + 1)-th packet.
"""

from __future__ import annotations

import asyncio

import aiortc
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

import media.peer as peer_module
from media.network import MediaNetwork
from media.peer import (
    AIORTC_AUDIO_PREFETCH,
    AUDIO_PREFETCH,
    MAX_AUDIO_PREFETCH,
    ClientPeer,
    PlayoutUnsupported,
    ToneTrack,
    audio_prefetch,
    check_playout,
    set_audio_prefetch,
)
from ringflow.agent import MediaSpec


@pytest.fixture(autouse=True)
def loopback() -> None:
    MediaNetwork().install()  # host candidates on 127.0.0.1 only


def test_playout_check_passes_on_the_installed_aiortc() -> None:
    assert check_playout() == aiortc.__version__


def test_playout_check_names_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = ((RTCRtpReceiver, "__init__", "self.__jitter_buffer = JitterBuffer(capacity=32, prefetch=2)"),)
    monkeypatch.setattr(peer_module, "_PLAYOUT_NEEDS", changed)
    check_playout.cache_clear()
    try:
        with pytest.raises(PlayoutUnsupported, match=r"RTCRtpReceiver.__init__ no longer contains"):
            check_playout()
        # and a peer that asks for a prefetch refuses to be made on such an aiortc
        with pytest.raises(PlayoutUnsupported):
            ClientPeer([ToneTrack()])
    finally:
        check_playout.cache_clear()


async def test_client_peer_sets_the_audio_prefetch_of_its_audio_receivers_only() -> None:
    default = ClientPeer([ToneTrack()], receive=("audio", "video"))
    stock = ClientPeer([ToneTrack()], audio_prefetch=None)
    deep = ClientPeer(receive=("audio",), audio_prefetch=MAX_AUDIO_PREFETCH)
    try:
        by_kind = {t.kind: t for t in default.pc.getTransceivers()}
        assert audio_prefetch(by_kind["audio"].receiver) == AUDIO_PREFETCH == 1
        video_buffer = by_kind["video"].receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert video_buffer.capacity == 512  # aiortc's video buffer, untouched
        [audio] = stock.pc.getTransceivers()
        assert audio_prefetch(audio.receiver) == AIORTC_AUDIO_PREFETCH == 4
        [audio] = deep.pc.getTransceivers()
        assert audio_prefetch(audio.receiver) == MAX_AUDIO_PREFETCH
        for bad in (0, MAX_AUDIO_PREFETCH + 1):
            with pytest.raises(ValueError, match="audio prefetch must be"):
                set_audio_prefetch(audio, bad)
        with pytest.raises(ValueError, match="not an audio transceiver"):
            set_audio_prefetch(by_kind["video"], 2)
    finally:
        for p in (default, stock, deep):
            await p.close()


def test_the_buffer_releases_the_first_frame_after_prefetch_packets() -> None:
    """The installed buffer's rule, packet by packet: a 20 ms Opus packet per frame; the
    first frame comes out with packet prefetch + 1, then one frame per packet."""
    peer = ClientPeer(receive=("audio",))
    [audio] = peer.pc.getTransceivers()
    for prefetch in (1, 4):
        set_audio_prefetch(audio, prefetch)
        buffer: JitterBuffer = audio.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        out = []
        for seq in range(10):
            packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=960 * seq, payload=b"x")
            packet._data = b"x"  # type: ignore[attr-defined]  # what the receiver depayloads
            _, frame = buffer.add(packet)
            out.append(None if frame is None else frame.timestamp // 960)
        assert out == [None] * prefetch + list(range(10 - prefetch)), (prefetch, out)


@pytest.mark.parametrize("prefetch", [None, 1])
async def test_a_tone_plays_after_prefetch_plus_one_packets(prefetch: int | None) -> None:
    """Peer to peer (no bridge): the listener's ``ClientPeer`` with ``audio_prefetch`` hears
    the tone, its jitter buffer having released the first frame at packet prefetch + 1."""
    listener = ClientPeer(receive=("audio",), audio_prefetch=prefetch)
    [audio] = listener.pc.getTransceivers()
    buffer = audio.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    released: list[bool] = []
    add = buffer.add

    def counting_add(packet: RtpPacket) -> tuple[bool, object]:
        result = add(packet)
        released.append(result[1] is not None)
        return result

    buffer.add = counting_add
    door = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tone = ToneTrack(440)
    try:
        await door.setRemoteDescription(RTCSessionDescription(sdp=await listener.offer(), type="offer"))
        door.getTransceivers()[0].sender.replaceTrack(tone)
        door.getTransceivers()[0].direction = "sendonly"
        await door.setLocalDescription(await door.createAnswer())
        await listener.accept(door.localDescription.sdp)
        async with asyncio.timeout(20):
            await listener.wait_loud(0.0)
        assert listener.heard() >= 1
        expected = AIORTC_AUDIO_PREFETCH if prefetch is None else prefetch
        assert released.index(True) == expected  # the (expected + 1)-th packet released frame 1
    finally:
        tone.stop()
        await listener.close()
        await door.close()


def test_media_spec_carries_and_checks_the_prefetch() -> None:
    assert MediaSpec().audio_prefetch == AUDIO_PREFETCH
    MediaSpec(video=None, audio_prefetch=None).check()
    MediaSpec(video=None, audio_prefetch=3).check()
    for bad in (0, MAX_AUDIO_PREFETCH + 1):
        with pytest.raises(ValueError, match="audio prefetch must be"):
            MediaSpec(video=None, audio_prefetch=bad).check()
