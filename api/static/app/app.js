// ringflow resident app: plain JavaScript, standard web APIs only (WebSocket, fetch,
// RTCPeerConnection, getUserMedia, WebAudio), so it runs as it is in Chromium and Firefox.
//
// The contract it follows is docs/media.md:
// - sign in with a party token (pasted, or ?token= in the URL), kept in sessionStorage;
// - push channel WebSocket /v1/push?token=...: frames {id, type, call_id, room_id, at,
//   payload}, each acknowledged with {"ack": [id]} and de-duplicated by id; reconnect with
//   exponential backoff (0.5 s doubling to 15 s, with jitter); close code 4401 = bad token;
// - incoming_call {caller_name, caller, room_type, ring_timeout_s (s), call_id, room_id}:
//   ring, and build the early-media peer at once: one RTCPeerConnection per call,
//   sendrecv transceivers for the local microphone/camera (muted until the answer) or
//   recvonly when there is none, complete ICE gathering, then
//   POST /v1/calls/{call_id}/media {sdp, type: "offer"} -> {sdp, type: "answer"};
// - POST /v1/calls/{id}/answer | reject | hang-up; in talk,
//   POST /v1/calls/{id}/actions {"action": "open_door"} -> CustomActionResult
//   {result: done|failed|timeout, detail}; the push custom_action_result says the same;
// - call_cancelled / call_ended {end_reason, keepTime (s)} end the call on the page;
// - GET /v1/me/calls?limit=&cursor= -> {items, next_cursor} (the resident's history);
// - a history row clicked (or Enter on it): GET /v1/calls/{id}/timeline.svg (the call's
//   timeline picture: rooms as lanes, phases coloured, events marked) in the call detail.
//
// Each call card shows its media statistics and carries them as data-* attributes
// (data-audio-packets, data-video-frames, data-local-candidates, ...) for people
// diagnosing a call and for the browser test (tests/test_browser.py).
"use strict";

(() => {
  const TOKEN_KEY = "ringflow.token";
  const ICE_GATHER_TIMEOUT_MS = 5000; // a complete offer is sent after at most this long
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const HISTORY_PAGE = 20;
  const SEEN_MAX = 2000; // push ids remembered for de-duplication
  const ENDED_CARD_MS = 120000; // an ended call stays on screen this long
  const MEDIA_RETRIES = 3; // new offers after a failed peer connection

  const $ = (sel, root = document) => root.querySelector(sel);

  // ------------------------------------------------------------------ session

  let token = null;
  let me = null; // party key from the token ("user:alice"), for display only
  let ws = null;
  let wsTimer = null;
  let backoff = BACKOFF_MIN_MS;
  const seen = new Set();
  const calls = new Map(); // call_id -> Call
  let historyCursor = null;

  class ApiError extends Error {
    constructor(status, doc) {
      const detail = (doc && (doc.detail || doc.title)) || `HTTP ${status}`;
      super(detail);
      this.status = status;
      this.slug = doc && typeof doc.type === "string" ? doc.type.split("/").pop() : "";
      this.doc = doc;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    let doc = null;
    try {
      doc = await response.json();
    } catch (_) {
      doc = null;
    }
    if (!response.ok) {
      const err = new ApiError(response.status, doc);
      if (response.status === 401) signOut(`Signed out: ${err.message}`);
      throw err;
    }
    return { doc, response };
  }

  function partyOfToken(t) {
    try {
      const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
      return typeof claims.sub === "string" ? claims.sub : null;
    } catch (_) {
      return null;
    }
  }

  function tokenFromUrl() {
    const url = new URL(location.href);
    const t = url.searchParams.get("token");
    if (t !== null) {
      // keep the token out of the address bar, the history and any later Referer
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return t && t.trim();
  }

  function signIn(t) {
    token = t;
    me = partyOfToken(t);
    if (!me) {
      $("#sign-in-error").textContent = "That does not look like a ringflow token.";
      token = null;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    $("#sign-in-error").textContent = "";
    $("#sign-in").hidden = true;
    $("#session").hidden = false;
    $("#calls").hidden = false;
    $("#history-section").hidden = false;
    $("#who").textContent = me.replace(/^user:/, "");
    document.body.dataset.signedIn = "true";
    connect();
    loadHistory(false);
  }

  function signOut(message) {
    token = null;
    me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(wsTimer);
    if (ws) {
      const old = ws;
      ws = null;
      old.close(1000, "signed out");
    }
    for (const call of calls.values()) call.finish("signed out", null, true);
    calls.clear();
    $("#calls").replaceChildren();
    $("#history tbody").replaceChildren();
    closeCallDetail();
    seen.clear();
    $("#sign-in").hidden = false;
    $("#session").hidden = true;
    $("#calls").hidden = true;
    $("#history-section").hidden = true;
    $("#sign-in-error").textContent = message || "";
    document.body.dataset.signedIn = "false";
    setPushState("offline");
  }

  // ------------------------------------------------------------------ push channel

  function setPushState(state, text) {
    const badge = $("#push-state");
    badge.dataset.state = state;
    badge.textContent = text || state;
  }

  function connect() {
    clearTimeout(wsTimer);
    if (!token) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/v1/push?token=${encodeURIComponent(token)}`);
    ws = socket;
    setPushState("connecting");
    let openedAt = 0;
    socket.onopen = () => {
      openedAt = Date.now();
      setPushState("online");
    };
    socket.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (typeof frame.id === "string") {
        socket.send(JSON.stringify({ ack: [frame.id] })); // duplicates are acknowledged too
        if (seen.has(frame.id)) return;
        seen.add(frame.id);
        if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value);
        backoff = BACKOFF_MIN_MS;
        handleFrame(frame);
      }
      // frames without id answer WebSocket actions; this app acts over REST
    };
    socket.onclose = (ev) => {
      if (ws !== socket) return; // replaced or signed out
      ws = null;
      if (ev.code === 4401) {
        signOut(`Signed out: ${ev.reason || "the token is not valid"}`);
        return;
      }
      if (openedAt && Date.now() - openedAt > 10000) backoff = BACKOFF_MIN_MS;
      const delay = Math.round(backoff * (0.8 + Math.random() * 0.4));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      setPushState("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s`);
      wsTimer = setTimeout(connect, delay);
    };
  }

  function handleFrame(frame) {
    const p = frame.payload || {};
    const callId = frame.call_id || p.call_id;
    const call = calls.get(callId);
    switch (frame.type) {
      case "incoming_call": {
        if (call && call.state !== "ended") return;
        if (call) call.remove();
        const c = new Call(frame);
        calls.set(callId, c);
        c.ring();
        break;
      }
      case "call_cancelled":
        if (call) call.finish(describeEnd(p.end_reason, "cancelled"), p);
        refreshHistorySoon(callId);
        break;
      case "call_ended":
        if (call) call.finish(describeEnd(p.end_reason, "ended"), p);
        refreshHistorySoon(callId);
        break;
      case "custom_action_result":
        if (call) call.showActionResult(p);
        break;
      default:
        break; // call_answered (to callers), call_event: nothing to show
    }
  }

  const END_REASONS = {
    hangUpVoip: "Call ended",
    cancelVoip: "The visitor hung up",
    rejectVoip: "Declined",
    timeout: "Missed (no answer)",
    busy: "Busy",
    abortVoip: "Call dropped (connection lost)",
    joinFailCaller: "The door could not connect",
    joinFailListener: "Could not connect",
  };

  function describeEnd(reason, fallback) {
    return END_REASONS[reason] || (reason ? `${fallback}: ${reason}` : fallback);
  }

  // ------------------------------------------------------------------ ringtone

  let audioCtx = null;
  function unlockAudio() {
    // Browsers start an AudioContext only after a user gesture: any click prepares it.
    if (audioCtx || !window.AudioContext) return;
    try {
      audioCtx = new AudioContext();
    } catch (_) {
      audioCtx = null;
    }
  }
  document.addEventListener("click", unlockAudio, { capture: true });

  function ringtone() {
    // Two short beeps every 2 s while ringing; returns a stop function.
    if (!audioCtx) return () => {};
    const ctx = audioCtx;
    let stopped = false;
    const beep = () => {
      if (stopped || ctx.state === "closed") return;
      const t = ctx.currentTime;
      for (const offset of [0, 0.35]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, t + offset);
        gain.gain.exponentialRampToValueAtTime(0.2, t + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + offset + 0.25);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t + offset);
        osc.stop(t + offset + 0.3);
      }
    };
    beep();
    const timer = setInterval(beep, 2000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  // ------------------------------------------------------------------ one call

  function candidateAddress(line) {
    // "a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ..."
    const parts = line.replace(/^a=/, "").split(" ");
    return parts.length >= 8 ? parts[4] : null;
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  class Call {
    constructor(frame) {
      const p = frame.payload || {};
      this.id = frame.call_id || p.call_id;
      this.roomId = frame.room_id || p.room_id || null;
      this.callerName = p.caller_name || p.caller || "Unknown caller";
      this.roomType = p.room_type === "voice" ? "voice" : "video";
      const ringS = Number(p.ring_timeout_s) || 60;
      // the countdown runs from the server's ring time when the clocks roughly agree
      const age = (Date.now() - Date.parse(frame.at)) / 1000;
      this.ringDeadline = Date.now() + 1000 * (age >= 0 && age < ringS ? ringS - age : ringS);
      this.state = "ringing";
      this.talkStart = null;
      this.pc = null;
      this.local = null;
      this.remote = new MediaStream();
      this.mediaAttempts = 0;
      this.localCandidates = new Set();
      this.actionsShown = new Set();
      this.stopRing = () => {};
      this.build();
      this.tick(); // the countdown shows at once, not at the next second's tick
    }

    build() {
      const node = $("#call-template").content.firstElementChild.cloneNode(true);
      node.dataset.callId = this.id;
      $(".caller", node).textContent = this.callerName;
      $(".answer", node).addEventListener("click", () => this.answer());
      $(".reject", node).addEventListener("click", () => this.reject());
      $(".hang-up", node).addEventListener("click", () => this.hangUp());
      $(".open-door", node).addEventListener("click", () => this.openDoor());
      if (this.roomType === "voice") $(".media", node).hidden = true;
      this.node = node;
      this.remoteVideo = $("video.remote", node);
      this.localVideo = $("video.local", node);
      this.remoteVideo.srcObject = this.remote;
      $("#calls").prepend(node);
    }

    setState(state, status) {
      this.state = state;
      this.node.dataset.state = state;
      if (status !== undefined) $(".status", this.node).textContent = status;
      const talk = state === "talk";
      const ringing = state === "ringing";
      $(".answer", this.node).hidden = !ringing;
      $(".reject", this.node).hidden = !ringing;
      $(".hang-up", this.node).hidden = !(talk || state === "answering");
      $(".open-door", this.node).hidden = !talk;
    }

    error(message) {
      $(".error", this.node).textContent = message || "";
    }

    ring() {
      this.setState("ringing", this.roomType === "video" ? "Incoming video call" : "Incoming call");
      this.stopRing = ringtone();
      this.startMedia().catch((e) => this.error(`No preview: ${e.message}`));
    }

    // -- media

    async startMedia() {
      if (this.state === "ended") return;
      this.mediaAttempts += 1;
      if (this.pc) this.pc.close();
      const wantVideo = this.roomType === "video";
      if (!this.local) {
        try {
          this.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: wantVideo });
        } catch (e) {
          this.local = null; // receive only: the resident still sees and hears the door
          const why = window.isSecureContext ? e.name : "this page needs https";
          this.error(`No microphone/camera (${why}): you can see and hear, not be heard.`);
        }
        if (this.local) {
          const live = this.state === "talk" || this.state === "answering";
          for (const t of this.local.getTracks()) t.enabled = live; // nothing leaves before the answer
          this.localVideo.srcObject = this.local;
        }
        if (this.state === "ended") return this.stopLocal();
      }
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      for (const kind of wantVideo ? ["audio", "video"] : ["audio"]) {
        const track = this.local && this.local.getTracks().find((t) => t.kind === kind);
        if (track) pc.addTransceiver(track, { direction: "sendrecv", streams: [this.local] });
        else pc.addTransceiver(kind, { direction: "recvonly" });
      }
      pc.ontrack = (ev) => {
        for (const old of this.remote.getTracks().filter((t) => t.kind === ev.track.kind)) {
          this.remote.removeTrack(old);
        }
        this.remote.addTrack(ev.track);
        this.remoteVideo.srcObject = this.remote;
        this.remoteVideo.play().catch(() => {});
      };
      pc.onicecandidate = (ev) => {
        if (ev.candidate && ev.candidate.candidate) {
          const a = candidateAddress(ev.candidate.candidate);
          if (a) this.localCandidates.add(a);
        }
      };
      pc.onconnectionstatechange = () => {
        if (pc !== this.pc) return;
        this.node.dataset.connection = pc.connectionState;
        if (pc.connectionState === "failed" && this.state !== "ended") {
          if (this.mediaAttempts <= MEDIA_RETRIES) {
            this.error("Connection lost, reconnecting...");
            setTimeout(() => this.startMedia().catch((e) => this.error(e.message)), 1000);
          } else {
            this.error("The connection failed.");
          }
        }
      };
      await pc.setLocalDescription(await pc.createOffer());
      await this.gathered(pc);
      for (const line of pc.localDescription.sdp.split(/\r?\n/)) {
        const a = line.startsWith("a=candidate:") ? candidateAddress(line) : null;
        if (a) this.localCandidates.add(a);
      }
      this.node.dataset.localCandidates = JSON.stringify([...this.localCandidates]);
      if (pc !== this.pc || this.state === "ended") return;
      const { doc } = await api("POST", `/v1/calls/${encodeURIComponent(this.id)}/media`, {
        sdp: pc.localDescription.sdp,
        type: "offer",
      });
      if (pc !== this.pc || this.state === "ended") return;
      await pc.setRemoteDescription({ type: "answer", sdp: doc.sdp });
      this.error("");
    }

    gathered(pc) {
      // complete ICE (no trickle): wait for gathering to finish, bounded
      if (pc.iceGatheringState === "complete") return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          if (pc.iceGatheringState !== "complete") return;
          pc.removeEventListener("icegatheringstatechange", done);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }, ICE_GATHER_TIMEOUT_MS);
        pc.addEventListener("icegatheringstatechange", done);
      });
    }

    stopLocal() {
      if (this.local) for (const t of this.local.getTracks()) t.stop();
      this.local = null;
    }

    // -- actions

    async act(name) {
      return api("POST", `/v1/calls/${encodeURIComponent(this.id)}/${name}`);
    }

    async answer() {
      if (this.state !== "ringing") return;
      this.stopRing();
      this.setState("answering", "Connecting...");
      this.error("");
      try {
        await this.act("answer");
      } catch (e) {
        if (e.slug === "answered-by-another") this.finish("Answered on another phone", null);
        else if (e.status === 409) this.finish(`Call over: ${e.message}`, null);
        else {
          this.setState("ringing", "Incoming call");
          this.error(`Could not answer: ${e.message}`);
        }
        return;
      }
      if (this.state === "ended") return;
      if (this.local) for (const t of this.local.getTracks()) t.enabled = true;
      this.remoteVideo.muted = false; // the door's audio now comes, after a user gesture
      this.remoteVideo.play().catch(() => {});
      this.talkStart = Date.now();
      this.setState("talk", "In call");
      if (!this.pc || ["failed", "closed"].includes(this.pc.connectionState)) {
        this.startMedia().catch((e) => this.error(`Media: ${e.message}`));
      }
      this.syncTalkStart();
    }

    async syncTalkStart() {
      // keepTime runs from the server's talk start (the call view), not from the click
      for (let i = 0; i < 20 && this.state === "talk"; i++) {
        try {
          const { doc, response } = await api("GET", `/v1/calls/${encodeURIComponent(this.id)}`);
          const started = doc && Date.parse(doc.talk_started_at);
          const serverNow = Date.parse(response.headers.get("date"));
          if (started && serverNow) {
            const elapsed = serverNow - started;
            if (elapsed >= 0 && elapsed < 86400000) this.talkStart = Date.now() - elapsed;
            return;
          }
        } catch (_) {
          return; // the local start stays
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }

    async reject() {
      if (this.state !== "ringing") return;
      this.stopRing();
      try {
        await this.act("reject");
        if (this.state !== "ended") this.setState("ending", "Declining..."); // call_ended may come first
      } catch (e) {
        if (e.status === 409) this.finish(`Call over: ${e.message}`, null);
        else this.error(`Could not decline: ${e.message}`);
      }
    }

    async hangUp() {
      try {
        await this.act("hang-up");
        if (this.state !== "ended") this.setState("ending", "Hanging up...");
      } catch (e) {
        if (e.status === 409) this.finish(`Call over: ${e.message}`, null);
        else this.error(`Could not hang up: ${e.message}`);
      }
    }

    async openDoor() {
      const button = $(".open-door", this.node);
      const out = $(".action-result", this.node);
      button.disabled = true;
      out.dataset.result = "pending";
      out.textContent = "Opening the door...";
      try {
        const { doc } = await api("POST", `/v1/calls/${encodeURIComponent(this.id)}/actions`, {
          action: "open_door",
        });
        this.showActionResult(doc);
      } catch (e) {
        out.dataset.result = "failed";
        out.textContent =
          e.slug === "unknown-action"
            ? "This door cannot be opened from a call."
            : `Could not open the door: ${e.message}`;
      } finally {
        button.disabled = false;
      }
    }

    showActionResult(p) {
      // from the REST answer or the custom_action_result push, whichever comes first
      if (!p || !p.result) return;
      const key = `${p.action_id}:${p.result}`;
      if (this.actionsShown.has(key)) return;
      this.actionsShown.add(key);
      const out = $(".action-result", this.node);
      out.dataset.result = p.result;
      out.dataset.actionId = p.action_id || "";
      if (p.result === "done") out.textContent = p.detail ? `Done: ${p.detail}` : "Door opened";
      else if (p.result === "timeout") out.textContent = "The door did not answer (timeout).";
      else out.textContent = `The door could not do it${p.detail ? `: ${p.detail}` : ""}.`;
    }

    finish(text, payload, quiet) {
      if (this.state === "ended") return;
      this.stopRing();
      const keep = payload && Number.isFinite(payload.keepTime) ? payload.keepTime : null;
      this.node.dataset.endReason = (payload && payload.end_reason) || "";
      if (keep !== null) this.node.dataset.keepTime = String(keep);
      this.setState("ended", keep !== null && this.talkStart ? `${text} · ${fmtDuration(keep)}` : text);
      $(".timer", this.node).textContent = "";
      this.stopLocal();
      if (this.pc) this.pc.close();
      this.pc = null;
      for (const t of this.remote.getTracks()) t.stop();
      if (!quiet) setTimeout(() => this.remove(), ENDED_CARD_MS);
    }

    remove() {
      if (calls.get(this.id) === this) calls.delete(this.id);
      this.node.remove();
    }

    tick() {
      const timer = $(".timer", this.node);
      if (this.state === "ringing") {
        const left = Math.ceil((this.ringDeadline - Date.now()) / 1000);
        timer.textContent = left > 0 ? `Ringing · ${left} s` : "No answer";
      } else if (this.state === "talk" && this.talkStart) {
        timer.textContent = fmtDuration((Date.now() - this.talkStart) / 1000);
      }
    }

    async sampleStats() {
      if (!this.pc || this.state === "ended") return;
      const report = await this.pc.getStats();
      const s = { audioPackets: 0, audioBytes: 0, videoFrames: 0, videoBytes: 0, width: 0, height: 0 };
      const locals = new Set(this.localCandidates);
      let pair = "";
      const byId = new Map();
      report.forEach((r) => byId.set(r.id, r));
      report.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "audio") {
          s.audioPackets += r.packetsReceived || 0;
          s.audioBytes += r.bytesReceived || 0;
        } else if (r.type === "inbound-rtp" && r.kind === "video") {
          s.videoFrames += r.framesDecoded || 0;
          s.videoBytes += r.bytesReceived || 0;
          s.width = r.frameWidth || s.width;
          s.height = r.frameHeight || s.height;
        } else if (r.type === "local-candidate") {
          const a = r.address || r.ip;
          if (a) locals.add(a);
        } else if (r.type === "candidate-pair" && r.state === "succeeded" && r.nominated) {
          const l = byId.get(r.localCandidateId);
          const rem = byId.get(r.remoteCandidateId);
          if (l && rem) pair = `${l.address || l.ip}:${l.port} -> ${rem.address || rem.ip}:${rem.port}`;
        }
      });
      const d = this.node.dataset;
      d.audioPackets = String(s.audioPackets);
      d.audioBytes = String(s.audioBytes);
      d.videoFrames = String(s.videoFrames);
      d.videoBytes = String(s.videoBytes);
      d.localCandidates = JSON.stringify([...locals]);
      d.pair = pair;
      const kb = (b) => `${(b / 1024).toFixed(0)} KiB`;
      $(".stats", this.node).textContent =
        `audio in ${s.audioPackets} pkts ${kb(s.audioBytes)}` +
        (this.roomType === "video" ? ` · video in ${s.videoFrames} frames ${s.width}x${s.height} ${kb(s.videoBytes)}` : "") +
        (pair ? ` · ${pair}` : "");
    }
  }

  setInterval(() => {
    for (const call of calls.values()) call.tick();
  }, 250);
  setInterval(() => {
    for (const call of calls.values()) call.sampleStats().catch(() => {});
  }, 1000);

  // ------------------------------------------------------------------ history

  let historyTimer = null;
  function refreshHistorySoon(callId) {
    // The call's row gets its end with callEnded, a moment after call_ended reaches us:
    // read again after 1 s, then back off (2, 4, 8 s) until the row shows how it ended.
    clearTimeout(historyTimer);
    let delay = 1000;
    const again = async () => {
      const rows = await loadHistory(false);
      const row = rows && rows.find((c) => c.call_id === callId);
      if (rows && callId && !(row && row.end_reason) && delay < 16000) {
        delay *= 2;
        historyTimer = setTimeout(again, delay);
      }
    };
    historyTimer = setTimeout(again, delay);
  }

  function outcome(c) {
    if (c.phase && c.phase !== "ended") return "In progress";
    if (c.answered_by) {
      const who = `${c.answered_by.kind}:${c.answered_by.id}`;
      return who === me ? "You answered" : `Answered by ${c.answered_by.id}`;
    }
    return describeEnd(c.end_reason, "ended");
  }

  async function loadHistory(more) {
    // one page of GET /v1/me/calls into the table; returns its calls (null on error)
    if (!token) return null;
    const params = new URLSearchParams({ limit: String(HISTORY_PAGE) });
    if (more && historyCursor) params.set("cursor", historyCursor);
    try {
      const { doc } = await api("GET", `/v1/me/calls?${params}`);
      const items = doc.items || doc.calls || [];
      historyCursor = doc.next_cursor || doc.next || null;
      const body = $("#history tbody");
      if (!more) body.replaceChildren();
      for (const c of items) {
        const row = document.createElement("tr");
        row.dataset.callId = c.call_id;
        row.dataset.endReason = c.end_reason || "";
        row.tabIndex = 0;
        row.title = "Show this call's timeline";
        if (c.call_id === detailCallId) row.setAttribute("aria-selected", "true");
        const cells = [
          new Date(c.started_at).toLocaleString(),
          c.caller_name || `${c.caller.kind}:${c.caller.id}`,
          c.room_type,
          outcome(c),
          c.keep_time_s ? fmtDuration(c.keep_time_s) : "",
        ];
        cells.forEach((text, i) => {
          const td = document.createElement("td");
          td.textContent = text;
          if (i === 4) td.className = "num";
          row.append(td);
        });
        body.append(row);
      }
      $("#history-empty").hidden = body.children.length > 0;
      $("#history-more").hidden = !historyCursor;
      $("#history-error").textContent = "";
      return items;
    } catch (e) {
      $("#history-error").textContent = `Could not load your calls: ${e.message}`;
      return null;
    }
  }

  // ------------------------------------------------------------------ call detail

  let detailCallId = null;

  async function showCallDetail(callId) {
    // the call's timeline picture (an SVG from the API, drawn inline so that its marks'
    // tooltips work; the page's CSP runs no script or handler that it could carry)
    const section = $("#call-detail");
    detailCallId = callId;
    section.hidden = false;
    section.dataset.callId = callId;
    section.dataset.state = "loading";
    $(".call-id", section).textContent = callId;
    $(".error", section).textContent = "";
    for (const r of document.querySelectorAll("#history tbody tr")) {
      if (r.dataset.callId === callId) r.setAttribute("aria-selected", "true");
      else r.removeAttribute("aria-selected");
    }
    try {
      const response = await fetch(`/v1/calls/${encodeURIComponent(callId)}/timeline.svg`, {
        headers: { Authorization: `Bearer ${token}` },
        cache: "no-store",
      });
      if (!response.ok) {
        let doc = null;
        try {
          doc = await response.json();
        } catch (_) {
          doc = null;
        }
        const err = new ApiError(response.status, doc);
        if (response.status === 401) signOut(`Signed out: ${err.message}`);
        throw err;
      }
      const text = await response.text();
      if (detailCallId !== callId) return; // another row was chosen meanwhile
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");
      const svg = doc.documentElement;
      if (svg.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
        throw new Error("the answer is not an SVG picture");
      }
      $(".timeline", section).replaceChildren(document.importNode(svg, true));
      section.dataset.state = "shown";
      section.scrollIntoView({ block: "nearest" });
    } catch (e) {
      if (detailCallId !== callId) return;
      section.dataset.state = "error";
      $(".timeline", section).replaceChildren();
      $(".error", section).textContent = `Could not load the call's timeline: ${e.message}`;
    }
  }

  function closeCallDetail() {
    detailCallId = null;
    const section = $("#call-detail");
    section.hidden = true;
    delete section.dataset.callId;
    delete section.dataset.state;
    $(".timeline", section).replaceChildren();
    for (const r of document.querySelectorAll("#history tbody tr[aria-selected]")) r.removeAttribute("aria-selected");
  }

  function rowCallId(ev) {
    const row = ev.target.closest("#history tbody tr");
    return row ? row.dataset.callId : null;
  }

  // ------------------------------------------------------------------ start

  function start() {
    $("#sign-in-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("#token-input").value.trim();
      $("#token-input").value = "";
      if (t) signIn(t);
    });
    $("#sign-out").addEventListener("click", () => signOut(""));
    $("#history-refresh").addEventListener("click", () => loadHistory(false));
    $("#history-more").addEventListener("click", () => loadHistory(true));
    $("#history tbody").addEventListener("click", (ev) => {
      const callId = rowCallId(ev);
      if (callId) showCallDetail(callId);
    });
    $("#history tbody").addEventListener("keydown", (ev) => {
      const callId = rowCallId(ev);
      if (callId && (ev.key === "Enter" || ev.key === " ")) {
        ev.preventDefault();
        showCallDetail(callId);
      }
    });
    $("#call-detail-close").addEventListener("click", closeCallDetail);
    const t = tokenFromUrl() || sessionStorage.getItem(TOKEN_KEY);
    if (t) signIn(t);
    else signOut("");
  }

  start();
})();
