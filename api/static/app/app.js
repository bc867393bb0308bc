// ringflow resident app: plain JavaScript, standard web APIs only (WebSocket, fetch,
// RTCPeerConnection, getUserMedia, WebAudio, Service Worker, Notifications, Intl), so it
// runs as it is in Chromium and Firefox. Every word it shows comes from the message
// catalogue (i18n.js, window.RingflowI18n: English and Simplified Chinese).
//
// The contract it follows is docs/media.md:
// - sign in with a party token (pasted, or ?token= in the URL), kept in sessionStorage;
// - push channel WebSocket /v1/push?token=...: frames {id, type, call_id, room_id, at,
//   payload}, each acknowledged with {"ack": [id]} and de-duplicated by id; reconnect with
//   exponential backoff (0.5 s doubling to 15 s, with jitter); close code 4401 = bad token;
// - incoming_call {caller_name, caller, room_type, ring_timeout_s (s), call_id, room_id,
//   ringing_actions?}: first checked to be live (issue 11 item 2: unacknowledged pushes come
//   again after a sign-in; a call older than its ring time, or one that GET
//   /v1/calls/{call_id} shows over, answered by another or no longer ringing this resident,
//   goes to the history, never to an incoming-call card); then it rings (WebAudio tone,
//   and a system notification through the service worker's registration while the tab is
//   in the background), and the early-media peer is built at once: one RTCPeerConnection
//   per call, sendrecv transceivers for the local microphone/camera (muted until the
//   answer) or recvonly when there is none, complete ICE gathering, then
//   POST /v1/calls/{call_id}/media {sdp, type: "offer"} -> {sdp, type: "answer"};
// - POST /v1/calls/{id}/pass (issue 10: "skip me, move on now"; shown on a unit's call
//   whose incoming_call says more_targets), POST /v1/me/calls/{id}/call-back | open-door
//   (a missed call inside its follow_up_until: the call log's buttons);
// - POST /v1/calls/{id}/answer | reject | hang-up; in talk (and while ringing where the
//   push offers it in ringing_actions: policy open_while_ringing),
//   POST /v1/calls/{id}/actions {"action": "open_door"} -> CustomActionResult
//   {result: done|failed|timeout, detail}; the push custom_action_result says the same;
// - call_cancelled / call_ended {end_reason, keepTime (s)} end the call on the page, stop
//   the ring and close the notification; other tabs of this browser are told through a
//   BroadcastChannel when this one answers or declines;
// - GET /v1/me/calls?limit=&cursor= -> {items, next_cursor} (the resident's history), each
//   call completed from GET /v1/calls/{id} (who answered, by name; whether the door opened)
//   and GET /v1/me/calls/{id}/snapshot.jpg (the visitor's picture from the door's early
//   media, when the bridge took one);
// - a history entry clicked (or Enter on it): GET /v1/calls/{id}/timeline.svg (the call's
//   timeline picture: rooms as lanes, phases coloured, events marked) in the call detail;
// - GET/PUT/DELETE /v1/me/do-not-disturb: the resident's own do-not-disturb.
// - GET/PUT /v1/me/presence: away / available (one presence across buildings; push "presence").
//
// Each call card carries its media statistics as data-* attributes (data-audio-packets,
// data-video-frames, data-local-candidates, ...) for the browser tests, and shows them to
// people diagnosing a call behind its "Details" toggle.
"use strict";

(() => {
  const I = window.RingflowI18n;
  const t = I.t;
  const TOKEN_KEY = "ringflow.token";
  const SETUP_KEY = "ringflow.setup"; // "done" once the first-run step was answered
  const ICE_GATHER_TIMEOUT_MS = 5000; // a complete offer is sent after at most this long
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const HISTORY_PAGE = 20;
  const SEEN_MAX = 2000; // push ids remembered for de-duplication
  const ENDED_CARD_MS = 120000; // an ended call stays on screen this long
  const MEDIA_RETRIES = 3; // new offers after a failed peer connection
  const STALE_GRACE_S = 5; // an incoming_call older than its ring time + this is history
  const VIEW_FETCHES = 4; // GET /v1/calls/{id} at a time for the history

  const $ = (sel, root = document) => root.querySelector(sel);

  // ------------------------------------------------------------------ session

  let token = null;
  let me = null; // party key from the token ("user:alice")
  let ws = null;
  let wsTimer = null;
  let backoff = BACKOFF_MIN_MS;
  let pushState = ["offline"];
  const seen = new Set();
  const calls = new Map(); // call_id -> Call
  let historyCursor = null;
  let historyItems = [];
  const views = new Map(); // call_id -> CallView of an ended call (it no longer changes)
  const snapshots = new Map(); // call_id -> blob: URL of its visitor snapshot, or null (none)
  const staleCalls = new Set(); // incoming_call pushes of calls already over

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
      if (response.status === 401) signOut(t("signin.out", { reason: err.message }));
      throw err;
    }
    return { doc, response };
  }

  const keyOf = (party) => (party ? `${party.kind}:${party.id}` : null);

  function partyOfToken(tok) {
    try {
      const part = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
      return typeof claims.sub === "string" ? claims.sub : null;
    } catch (_) {
      return null;
    }
  }

  function tokenFromUrl() {
    const url = new URL(location.href);
    const tok = url.searchParams.get("token");
    if (tok !== null) {
      // keep the token out of the address bar, the history and any later Referer
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return tok && tok.trim();
  }

  function signIn(tok) {
    token = tok;
    me = partyOfToken(tok);
    if (!me) {
      $("#sign-in-error").textContent = t("signin.bad");
      token = null;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, tok);
    $("#sign-in-error").textContent = "";
    $("#sign-in").hidden = true;
    $("#session").hidden = false;
    $("#calls").hidden = false;
    $("#history-section").hidden = false;
    $("#who").textContent = me.replace(/^(user|device):/, "");
    document.body.dataset.signedIn = "true";
    showSetup();
    connect();
    loadHistory(false);
    loadDnd();
    loadPresence();
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
    for (const call of calls.values()) call.finish(t("call.signedOut"), null, true);
    calls.clear();
    $("#calls").replaceChildren();
    $("#history").replaceChildren();
    historyItems = [];
    closeCallDetail();
    seen.clear();
    $("#sign-in").hidden = false;
    for (const id of ["#session", "#calls", "#history-section", "#setup", "#sound", "#dnd"]) $(id).hidden = true;
    $("#sign-in-error").textContent = message || "";
    document.body.dataset.signedIn = "false";
    setPushState("offline");
  }

  // ------------------------------------------------------------------ push channel

  function setPushState(state, vars) {
    pushState = [state, vars];
    const badge = $("#push-state");
    badge.dataset.state = state;
    badge.textContent = t(`push.${state}`, vars);
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
        signOut(t("signin.out", { reason: ev.reason || t("signin.badToken") }));
        return;
      }
      if (openedAt && Date.now() - openedAt > 10000) backoff = BACKOFF_MIN_MS;
      const delay = Math.round(backoff * (0.8 + Math.random() * 0.4));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      setPushState("reconnecting", { s: (delay / 1000).toFixed(1) });
      wsTimer = setTimeout(connect, delay);
    };
  }

  function handleFrame(frame) {
    const p = frame.payload || {};
    const callId = frame.call_id || p.call_id;
    const call = calls.get(callId);
    switch (frame.type) {
      case "incoming_call": {
        if (staleCalls.has(callId)) return;
        if (call && call.state !== "ended") return;
        if (call) call.remove();
        const c = new Call(frame);
        calls.set(callId, c);
        c.check();
        break;
      }
      case "talk_started":
        // a call this app placed (a call back): the door answered
        if (call && call.outgoing && call.state !== "ended") {
          call.talkStart = Date.now();
          call.setState("talk", "call.inCall");
        }
        break;
      case "call_cancelled":
      case "call_ended":
        if (call) call.stopped(p, frame.type === "call_cancelled");
        refreshHistorySoon(callId);
        break;
      case "custom_action_result":
        if (call) call.showActionResult(p);
        break;
      case "presence": // set away/available here, in another app or by the property manager
        presence = p;
        renderPresence();
        break;
      case "media_reoffer":
        // issue 13: the media bridge holding the call died; a new peer connection and a new
        // offer, which the server places on a live bridge (docs/media.md). The rooms of one
        // call each send one: de-duplicated by the lost bridge (payload.lost).
        if (call && call.state !== "ended" && call.reofferedFor !== `${p.lost}@${frame.at}`) {
          call.reofferedFor = `${p.lost}@${frame.at}`;
          call.mediaAttempts = 0;
          call.node.dataset.reoffers = String(Number(call.node.dataset.reoffers || 0) + 1);
          call.startMedia().catch((e) => call.mediaFailed(e.message));
        }
        break;
      default:
        break; // call_answered (to callers), call_event: nothing to show
    }
  }

  function describeEnd(reason, fallbackKey) {
    if (!reason) return t(fallbackKey);
    const text = t(`end.${reason}`);
    return text === `end.${reason}` ? t("end.other", { what: t(fallbackKey), reason }) : text;
  }

  // ------------------------------------------------------------------ other tabs

  const channel = "BroadcastChannel" in window ? new BroadcastChannel("ringflow") : null;
  if (channel) {
    channel.onmessage = (ev) => {
      // another tab of this browser answered or declined a call this one rings too
      const msg = ev.data || {};
      const call = calls.get(msg.call_id);
      if (msg.type === "handled" && msg.party === me && call && ["checking", "ringing"].includes(call.state)) {
        call.finish(t("call.answeredElsewhere"), null);
      }
    };
  }

  // ------------------------------------------------------------------ ring: sound and notification

  let audioCtx = null;
  function audioRunning() {
    return !!audioCtx && audioCtx.state === "running";
  }

  function unlockAudio() {
    // Browsers start an AudioContext only after a user gesture: any click or key prepares it.
    if (!window.AudioContext) return;
    try {
      if (!audioCtx) audioCtx = new AudioContext();
      if (audioCtx.state === "suspended") audioCtx.resume().then(updateSoundBanner, () => {});
    } catch (_) {
      audioCtx = null;
    }
    updateSoundBanner();
  }
  for (const type of ["pointerdown", "keydown", "click"]) {
    document.addEventListener(type, unlockAudio, { capture: true });
  }

  function updateSoundBanner() {
    document.body.dataset.sound = audioRunning() ? "on" : "locked";
    $("#sound").hidden = !token || !$("#setup").hidden || audioRunning();
  }

  function beep(ctx, at, freq, length) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + length + 0.05);
  }

  function ringtone() {
    // Two short beeps every 2 s while ringing; returns a stop function. Counted in
    // body[data-ring-beeps] (beeps that reached a running AudioContext).
    let stopped = false;
    const ring = () => {
      if (stopped || !audioCtx || audioCtx.state === "closed") return;
      if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
      if (audioCtx.state !== "running") return;
      const now = audioCtx.currentTime;
      beep(audioCtx, now, 880, 0.25);
      beep(audioCtx, now + 0.35, 880, 0.25);
      document.body.dataset.ringBeeps = String(Number(document.body.dataset.ringBeeps || 0) + 1);
    };
    ring();
    const timer = setInterval(ring, 2000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  let swReg = null;
  async function registerWorker() {
    // the service worker (sw.js): installable app, and notifications that ring while the
    // tab is in the background (its registration shows them)
    if (!("serviceWorker" in navigator) || !window.isSecureContext) return null;
    try {
      await navigator.serviceWorker.register("app/sw.js", { scope: "/app" });
      swReg = await navigator.serviceWorker.ready;
      document.body.dataset.serviceWorker = "ready";
    } catch (e) {
      swReg = null;
      document.body.dataset.serviceWorker = `failed: ${e.message}`;
    }
    return swReg;
  }

  function notifyRing(call) {
    // a system notification when the resident may not be looking at this tab
    if (!swReg || !("Notification" in window) || Notification.permission !== "granted") return;
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    const place = call.place();
    swReg
      .showNotification(t("notify.title", { name: call.callerName }), {
        body: place ? t("notify.bodyPlace", { place }) : t("notify.body"),
        tag: call.id,
        renotify: true,
        requireInteraction: true,
        icon: "app/icon.svg",
        vibrate: [400, 200, 400, 200, 400],
        data: { call_id: call.id },
      })
      .then(() => {
        call.node.dataset.notified = "true";
      })
      .catch(() => {});
  }

  function closeNotification(callId) {
    if (!swReg) return;
    swReg
      .getNotifications({ tag: callId })
      .then((shown) => shown.forEach((n) => n.close()))
      .catch(() => {});
  }

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (ev) => {
      const msg = ev.data || {};
      const call = msg.type === "show-call" ? calls.get(msg.call_id) : null;
      if (call && !call.node.hidden) {
        call.node.scrollIntoView({ block: "start" });
        const answer = $(".answer", call.node);
        if (!answer.hidden) answer.focus();
      }
    });
  }

  // ------------------------------------------------------------------ first-run step

  function setupNeeded() {
    let done = false;
    try {
      done = localStorage.getItem(SETUP_KEY) === "done";
    } catch (_) {
      done = false;
    }
    const notifyAsked = !("Notification" in window) || Notification.permission !== "default";
    return !(done && notifyAsked);
  }

  function showSetup() {
    $("#setup").hidden = !setupNeeded();
    updateSoundBanner();
  }

  let noticeKey = null;
  let noticeTimer = null;
  function notice(key) {
    // a passing message (a catalogue key, shown again in another language), gone after 10 s
    noticeKey = key;
    $("#notice").textContent = key ? t(key) : "";
    clearTimeout(noticeTimer);
    if (key) noticeTimer = setTimeout(() => notice(null), 10000);
  }

  async function enableRinging() {
    unlockAudio(); // this click is the user gesture the ring sound needs
    if (audioCtx) beep(audioCtx, audioCtx.currentTime + 0.05, 660, 0.2); // what a ring sounds like
    let text;
    if (!("Notification" in window) || !swReg) {
      text = "setup.unsupported";
    } else {
      let permission = Notification.permission;
      if (permission === "default") {
        try {
          permission = await Notification.requestPermission();
        } catch (_) {
          permission = "denied";
        }
      }
      text = permission === "granted" ? "setup.done" : "setup.noNotify";
    }
    try {
      localStorage.setItem(SETUP_KEY, "done");
    } catch (_) {
      // private mode: asked again next time
    }
    $("#setup").hidden = true;
    notice(text);
    updateSoundBanner();
  }

  function skipSetup() {
    try {
      localStorage.setItem(SETUP_KEY, "done");
    } catch (_) {
      // private mode
    }
    $("#setup").hidden = true;
    updateSoundBanner();
  }

  // ------------------------------------------------------------------ one call

  function candidateAddress(line) {
    // "a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ..."
    const parts = line.replace(/^a=/, "").split(" ");
    return parts.length >= 8 ? parts[4] : null;
  }

  function fmtClock(s) {
    // the running call's clock, "m:ss" (digits read the same in every language)
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
      this.at = frame.at;
      this.callerName = p.caller_name || p.caller || t("call.unknownCaller");
      this.roomType = p.room_type === "voice" ? "voice" : "video";
      this.ringingActions = Array.isArray(p.ringing_actions) ? p.ringing_actions : [];
      this.moreTargets = p.more_targets === true; // a unit's call that would ring someone else
      this.outgoing = false; // a call this app placed (call back), not an incoming one
      this.ringS = Number(p.ring_timeout_s) || 60;
      // the countdown runs from the server's ring time when the clocks roughly agree
      const age = (Date.now() - Date.parse(frame.at)) / 1000;
      this.ringDeadline = Date.now() + 1000 * (age >= 0 && age < this.ringS ? this.ringS - age : this.ringS);
      this.state = "checking";
      this.unitId = null;
      this.talkStart = null;
      this.pc = null;
      this.local = null;
      this.sendingVideo = true;
      this.mediaProblem = null; // shown only once the resident answered
      this.remote = new MediaStream();
      this.mediaAttempts = 0;
      this.localCandidates = new Set();
      this.actionsShown = new Set();
      this.stopRing = () => {};
      this.build();
    }

    build() {
      const node = $("#call-template").content.firstElementChild.cloneNode(true);
      node.dataset.callId = this.id;
      $(".answer", node).addEventListener("click", () => this.answer());
      $(".reject", node).addEventListener("click", () => this.reject());
      $(".pass", node).addEventListener("click", () => this.pass());
      $(".hang-up", node).addEventListener("click", () => this.hangUp());
      $(".open-door", node).addEventListener("click", () => this.openDoor());
      $(".camera", node).addEventListener("click", () => this.toggleVideo());
      if (this.roomType === "voice") $(".media", node).hidden = true;
      this.node = node;
      this.remoteVideo = $("video.remote", node);
      this.localVideo = $("video.local", node);
      this.remoteVideo.srcObject = this.remote;
      this.relabel();
      $("#calls").prepend(node);
    }

    place() {
      return this.unitId ? t("call.unit", { unit: this.unitId }) : "";
    }

    relabel() {
      // every text of the card in the current language (called again on a switch)
      const n = this.node;
      $(".caller", n).textContent = this.callerName;
      $(".place", n).textContent = this.place();
      $(".answer", n).textContent = t("call.answer");
      $(".reject", n).textContent = t("call.decline");
      $(".pass", n).textContent = t("call.pass");
      $(".open-door", n).textContent = t("call.openDoor");
      $(".hang-up", n).textContent = t("call.hangUp");
      $(".camera", n).textContent = this.sendingVideo ? t("call.videoOff") : t("call.videoOn");
      $(".details summary", n).textContent = t("call.details");
      this.remoteVideo.setAttribute("aria-label", t("call.doorVideo", { name: this.callerName }));
      this.localVideo.setAttribute("aria-label", t("call.selfView"));
      if (this.statusKey) $(".status", n).textContent = t(this.statusKey, this.statusVars);
      this.tick();
    }

    setState(state, statusKey, statusVars) {
      // statusKey: a catalogue key, or null with statusVars.text for a text already made
      this.state = state;
      this.node.dataset.state = state;
      if (statusKey !== undefined) {
        this.statusKey = statusKey; // null: statusVars.text, made already (kept on a language switch)
        this.statusVars = statusVars;
        $(".status", this.node).textContent = statusKey ? t(statusKey, statusVars) : statusVars.text;
      }
      const talk = state === "talk";
      const ringing = state === "ringing";
      $(".answer", this.node).hidden = !ringing;
      $(".reject", this.node).hidden = !ringing;
      $(".pass", this.node).hidden = !(ringing && this.moreTargets);
      $(".hang-up", this.node).hidden = !(talk || state === "answering");
      $(".open-door", this.node).hidden = !(talk || (ringing && this.ringingActions.includes("open_door")));
      const hasCamera = !!(this.local && this.local.getVideoTracks().length);
      $(".camera", this.node).hidden = !(talk && hasCamera);
      this.showSelfView();
    }

    showSelfView() {
      // no self-view until the resident sends video (talk, camera on)
      const hasCamera = !!(this.local && this.local.getVideoTracks().length);
      this.localVideo.hidden = !(this.state === "talk" && hasCamera && this.sendingVideo);
    }

    error(message) {
      $(".error", this.node).textContent = message || "";
    }

    async check() {
      // issue 11 item 2: only a live call rings. A push older than its ring time, or a call
      // the API shows over, answered by another or not ringing this resident any more,
      // goes to the history. When the API cannot tell (network), it rings: never miss one.
      const age = (Date.now() - Date.parse(this.at)) / 1000;
      if (Number.isFinite(age) && age > this.ringS + STALE_GRACE_S) return this.stale();
      let view = null;
      try {
        ({ doc: view } = await api("GET", `/v1/calls/${encodeURIComponent(this.id)}`));
      } catch (e) {
        if (e.status === 403 || e.status === 404) return this.stale();
        view = null;
      }
      if (this.state !== "checking") return; // stopped meanwhile (stale() ran)
      if (view) {
        this.unitId = view.unit_id || null;
        const mine = (view.attempts || []).find((a) => a.room_id === this.roomId);
        const answered = view.answered_by && keyOf(view.answered_by) !== me;
        const over = ["finish", "ended"].includes(view.phase) || (mine && (mine.ended_at || mine.outcome));
        if (answered || over) return this.stale();
      }
      this.ring();
    }

    stale() {
      this.state = "ended";
      this.node.dataset.state = "stale";
      staleCalls.add(this.id);
      this.remove();
      refreshHistorySoon(this.id);
    }

    ring() {
      this.node.hidden = false;
      this.setState("ringing", this.roomType === "video" ? "call.incomingVideo" : "call.incoming");
      this.relabel();
      this.node.scrollIntoView({ block: "start" });
      this.stopRing = ringtone();
      notifyRing(this);
      this.startMedia().catch((e) => {
        this.mediaProblem = e.message; // no preview: said only if the resident answers
      });
    }

    stopped(payload, cancelled) {
      // call_cancelled (this resident's ringing stopped) / call_ended (this room is over):
      // the ring stops here, in the notification and on the card
      if (this.state === "checking") return this.stale();
      const reason = payload && payload.end_reason;
      if (cancelled && !this.talkStart) {
        this.finish(t("end.cancelled"), payload);
        this.explainCancel();
      } else {
        this.finish(describeEnd(reason, "end.ended"), payload);
      }
    }

    async explainCancel() {
      // the ringing stopped: another resident answered (say who), or the call ended (why)
      try {
        const { doc } = await api("GET", `/v1/calls/${encodeURIComponent(this.id)}`);
        if (doc && doc.answered_by && keyOf(doc.answered_by) !== me) {
          const a = (doc.attempts || []).find((x) => keyOf(x.listener) === keyOf(doc.answered_by));
          this.setState("ended", "call.answeredBy", { name: (a && a.listener_name) || doc.answered_by.id });
          this.node.dataset.answeredElsewhere = "true";
        } else if (doc && doc.phase === "ended" && doc.end_reason) {
          this.setState("ended", null, { text: describeEnd(doc.end_reason, "end.ended") });
        }
      } catch (_) {
        // the text stays
      }
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
          this.noMic = window.isSecureContext ? e.name : t("call.needsHttps");
          if (this.state === "talk" || this.state === "answering") this.error(t("call.noMic", { why: this.noMic }));
        }
        if (this.local) {
          const live = this.state === "talk" || this.state === "answering";
          for (const tr of this.local.getTracks()) tr.enabled = live; // nothing leaves before the answer
          this.localVideo.srcObject = this.local;
        }
        if (this.state === "ended") return this.stopLocal();
      }
      // STUN/TURN for this party, TURN with a fresh ephemeral credential (GET
      // /v1/media/ice-servers, ringflow/ice.py); none configured: [], host candidates only
      const { doc: ice } = await api("GET", "/v1/media/ice-servers");
      if (this.state === "ended") return this.stopLocal();
      const pc = new RTCPeerConnection({ iceServers: ice.ice_servers });
      this.pc = pc;
      for (const kind of wantVideo ? ["audio", "video"] : ["audio"]) {
        const track = this.local && this.local.getTracks().find((tr) => tr.kind === kind);
        if (track) pc.addTransceiver(track, { direction: "sendrecv", streams: [this.local] });
        else pc.addTransceiver(kind, { direction: "recvonly" });
      }
      pc.ontrack = (ev) => {
        for (const old of this.remote.getTracks().filter((tr) => tr.kind === ev.track.kind)) {
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
          const answered = this.state === "talk" || this.state === "answering";
          if (this.mediaAttempts <= MEDIA_RETRIES) {
            setTimeout(() => this.startMedia().catch((e) => this.mediaFailed(e.message)), 1000);
          } else if (answered) {
            this.error(t("call.media", { msg: pc.connectionState }));
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
      this.mediaProblem = null;
      if (this.state === "talk") this.error("");
    }

    mediaFailed(message) {
      // a media problem is the resident's business only once they answered
      this.mediaProblem = message;
      if (this.state === "talk" || this.state === "answering") this.error(t("call.media", { msg: message }));
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
      if (this.local) for (const tr of this.local.getTracks()) tr.stop();
      this.local = null;
    }

    // -- actions

    async act(name) {
      return api("POST", `/v1/calls/${encodeURIComponent(this.id)}/${name}`);
    }

    handled() {
      this.stopRing();
      closeNotification(this.id);
      if (channel) channel.postMessage({ type: "handled", call_id: this.id, party: me });
    }

    async answer() {
      if (this.state !== "ringing") return;
      this.handled();
      this.setState("answering", "call.connecting");
      this.error("");
      try {
        await this.act("answer");
      } catch (e) {
        if (e.slug === "answered-by-another") this.finish(t("call.answeredElsewhere"), null);
        else if (e.status === 409) this.finish(t("call.over", { msg: e.message }), null);
        else {
          this.setState("ringing", "call.incoming");
          this.error(t("call.cannotAnswer", { msg: e.message }));
        }
        return;
      }
      if (this.state === "ended") return;
      if (this.local) for (const tr of this.local.getTracks()) tr.enabled = true;
      this.sendingVideo = true;
      this.remoteVideo.muted = false; // the door's audio now comes, after a user gesture
      this.remoteVideo.play().catch(() => {});
      this.talkStart = Date.now();
      this.setState("talk", "call.inCall");
      this.relabel();
      if (this.noMic) this.error(t("call.noMic", { why: this.noMic }));
      else if (this.mediaProblem) this.error(t("call.media", { msg: this.mediaProblem }));
      if (!this.pc || ["failed", "closed"].includes(this.pc.connectionState)) {
        this.startMedia().catch((e) => this.mediaFailed(e.message));
      }
      this.syncTalkStart();
    }

    toggleVideo() {
      if (!this.local) return;
      this.sendingVideo = !this.sendingVideo;
      for (const tr of this.local.getVideoTracks()) tr.enabled = this.sendingVideo;
      const button = $(".camera", this.node);
      button.setAttribute("aria-pressed", String(this.sendingVideo));
      button.textContent = this.sendingVideo ? t("call.videoOff") : t("call.videoOn");
      this.showSelfView();
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
      await this.leaveRinging("reject", "call.declining", "call.cannotDecline");
    }

    async pass() {
      // issue 10: passVoip, the building call moves on to the next resident at once
      await this.leaveRinging("pass", "call.passing", "call.cannotPass");
    }

    async leaveRinging(action, statusKey, errorKey) {
      // decline or pass: the ring stops here; call_ended may come before the answer
      if (this.state !== "ringing") return;
      this.handled();
      try {
        await this.act(action);
        if (this.state !== "ended") this.setState("ending", statusKey);
      } catch (e) {
        if (e.status === 409) this.finish(t("call.over", { msg: e.message }), null);
        else this.error(t(errorKey, { msg: e.message }));
      }
    }

    async hangUp() {
      try {
        await this.act("hang-up");
        if (this.state !== "ended") this.setState("ending", "call.hangingUp");
      } catch (e) {
        if (e.status === 409) this.finish(t("call.over", { msg: e.message }), null);
        else this.error(t("call.cannotHangUp", { msg: e.message }));
      }
    }

    async openDoor() {
      const button = $(".open-door", this.node);
      const out = $(".action-result", this.node);
      button.disabled = true;
      out.dataset.result = "pending";
      out.textContent = t("door.opening");
      try {
        const { doc } = await api("POST", `/v1/calls/${encodeURIComponent(this.id)}/actions`, {
          action: "open_door",
        });
        this.showActionResult(doc);
      } catch (e) {
        out.dataset.result = "failed";
        if (e.slug === "unknown-action") out.textContent = t("door.cannot");
        else if (e.slug === "call-not-active" && this.state === "ringing") {
          out.textContent = t("door.notNow");
          this.ringingActions = [];
          button.hidden = true;
        } else out.textContent = t("door.error", { msg: e.message });
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
      if (p.result === "done") out.textContent = p.detail ? t("door.done", { detail: p.detail }) : t("door.opened");
      else if (p.result === "timeout") out.textContent = t("door.timeout");
      else out.textContent = p.detail ? t("door.failedWhy", { detail: p.detail }) : t("door.failed");
    }

    finish(text, payload, quiet) {
      if (this.state === "ended") return;
      this.stopRing();
      closeNotification(this.id);
      const keep = payload && Number.isFinite(payload.keepTime) ? payload.keepTime : null;
      this.node.dataset.endReason = (payload && payload.end_reason) || "";
      if (keep !== null) this.node.dataset.keepTime = String(keep);
      const status = keep !== null && this.talkStart ? `${text} · ${I.fmtDuration(keep)}` : text;
      this.setState("ended", null, { text: status });
      $(".timer", this.node).textContent = "";
      this.stopLocal();
      if (this.pc) this.pc.close();
      this.pc = null;
      for (const tr of this.remote.getTracks()) tr.stop();
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
        timer.textContent = left > 0 ? t("call.ringing", { s: left }) : t("call.noAnswer");
      } else if (this.state === "talk" && this.talkStart) {
        timer.textContent = fmtClock((Date.now() - this.talkStart) / 1000);
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

  function answererName(c, view) {
    const who = keyOf(c.answered_by);
    const attempt = view && (view.attempts || []).find((a) => keyOf(a.listener) === who);
    return (attempt && attempt.listener_name) || c.answered_by.id;
  }

  function doorOpened(view) {
    return !!(
      view &&
      (view.events || []).some(
        (e) => e.name === "customActionResult" && e.data && e.data.result === "done" && e.data.action === "open_door",
      )
    );
  }

  function initials(name) {
    const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
    if (!words.length) return "?";
    const first = [...words[0]][0] || "?";
    const second = words.length > 1 ? [...words[words.length - 1]][0] || "" : "";
    return /[A-Za-z]/.test(first) ? (first + second).toUpperCase() : first;
  }

  function entryNode(c) {
    const view = views.get(c.call_id) || null;
    const node = $("#entry-template").content.firstElementChild.cloneNode(true);
    const ended = !c.phase || c.phase === "ended";
    const missed = ended && !c.answered_by && keyOf(c.caller) !== me;
    const opened = doorOpened(view);
    const name = c.caller_name || (c.caller ? c.caller.id : t("call.unknownCaller"));
    let outcome;
    if (!ended) outcome = t("history.inProgress");
    else if (c.answered_by && keyOf(c.answered_by) === me) outcome = t("history.youAnswered");
    else if (c.answered_by) outcome = t("history.answeredBy", { name: answererName(c, view) });
    else if (missed) outcome = `${t("history.missed")} · ${describeEnd(c.end_reason, "end.ended")}`;
    else outcome = describeEnd(c.end_reason, "end.ended");
    node.dataset.callId = c.call_id;
    node.dataset.endReason = c.end_reason || "";
    node.dataset.missed = String(missed);
    node.dataset.doorOpened = String(opened);
    if (c.answered_by) node.dataset.answeredBy = keyOf(c.answered_by);
    const open = $(".open", node);
    open.title = t("history.open");
    if (c.call_id === detailCallId) open.setAttribute("aria-current", "true");
    const snap = $(".snap", node);
    const picture = snapshots.get(c.call_id);
    if (picture) {
      // the visitor snapshot the bridge took from the door's early media
      const img = document.createElement("img");
      img.src = picture;
      img.alt = t("history.snapshot", { name });
      snap.removeAttribute("role");
      snap.replaceChildren(img);
      node.dataset.snapshot = "true";
    } else {
      snap.setAttribute("aria-label", t("history.noPicture"));
      $(".initials", node).textContent = initials(name);
    }
    $(".who", node).textContent = name;
    $(".outcome", node).textContent = outcome;
    const time = document.createElement("time");
    time.dateTime = c.started_at;
    time.textContent = I.fmtDateTime(c.started_at);
    $(".when", node).replaceChildren(time);
    const door = $(".door", node);
    door.hidden = !opened;
    door.textContent = t("history.doorOpened");
    $(".talk", node).textContent = c.keep_time_s ? t("history.talk", { d: I.fmtDuration(c.keep_time_s) }) : "";
    followUp(node, c, missed, name);
    return node;
  }

  function followUp(node, c, missed, name) {
    // issue 10: a missed call inside its follow-up window: call the door back, open it
    const until = c.follow_up_until ? Date.parse(c.follow_up_until) : 0;
    const box = $(".follow-up", node);
    if (!missed || !(until > Date.now())) return;
    box.hidden = false;
    node.dataset.followUp = "true";
    const out = $(".follow-up-result", node);
    const back = $(".call-back", node);
    back.textContent = t("history.callBack");
    back.addEventListener("click", async () => {
      back.disabled = true;
      try {
        const { doc } = await api("POST", `/v1/me/calls/${encodeURIComponent(c.call_id)}/call-back`);
        out.textContent = t("history.callingBack", { name });
        const call = new Call({ call_id: doc.call_id, at: new Date().toISOString(), payload: { caller_name: name, room_type: c.room_type } });
        call.outgoing = true;
        calls.set(doc.call_id, call);
        call.setState("answering", "call.callingBack", { name });
        call.startMedia().catch((e) => call.mediaFailed(e.message));
      } catch (e) {
        out.textContent = t("history.followUpFailed", { msg: e.message });
        back.disabled = false;
      }
    });
    const open = $(".open-door-after", node);
    open.hidden = false;
    open.textContent = t("call.openDoor");
    open.addEventListener("click", async () => {
      open.disabled = true;
      out.textContent = t("door.opening");
      try {
        const { doc } = await api("POST", `/v1/me/calls/${encodeURIComponent(c.call_id)}/open-door`);
        out.dataset.result = doc.result;
        out.textContent = doc.result === "done" ? t("history.doorOpened") : t("history.followUpFailed", { msg: doc.detail || doc.result });
      } catch (e) {
        out.textContent = t("history.followUpFailed", { msg: e.message });
        if (e.slug === "follow-up-not-allowed") open.hidden = true;
      }
      open.disabled = false;
    });
  }

  function renderHistory() {
    const list = $("#history");
    list.replaceChildren(...historyItems.map(entryNode));
    $("#history-empty").hidden = historyItems.length > 0;
    $("#history-more").hidden = !historyCursor;
  }

  async function completeHistory(items) {
    // who answered (by name) and whether the door opened: GET /v1/calls/{id} of each call,
    // a few at a time; an ended call's view is kept (it no longer changes)
    const todo = items.filter((c) => (views.get(c.call_id) || {}).phase !== "ended");
    const one = async () => {
      while (todo.length && token) {
        const c = todo.shift();
        try {
          const { doc } = await api("GET", `/v1/calls/${encodeURIComponent(c.call_id)}`);
          if (!doc) continue;
          views.set(c.call_id, doc);
          if (!snapshots.has(c.call_id) && c.room_type === "video" && c.caller && c.caller.kind === "device") {
            snapshots.set(c.call_id, await fetchSnapshot(c.call_id));
          }
          const i = historyItems.findIndex((x) => x.call_id === c.call_id);
          const old = $(`#history .entry[data-call-id="${CSS.escape(c.call_id)}"]`);
          if (i >= 0 && old) old.replaceWith(entryNode(historyItems[i]));
        } catch (_) {
          // the entry stays as the list had it
        }
      }
    };
    await Promise.all(Array.from({ length: VIEW_FETCHES }, one));
  }

  async function fetchSnapshot(callId) {
    // GET /v1/me/calls/{id}/snapshot.jpg -> a blob: URL, or null when the call has none
    try {
      const response = await fetch(`/v1/me/calls/${encodeURIComponent(callId)}/snapshot.jpg`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (!response.ok) return null;
      return URL.createObjectURL(await response.blob());
    } catch (_) {
      return null;
    }
  }

  async function loadHistory(more) {
    // one page of GET /v1/me/calls into the list; returns its calls (null on error)
    if (!token) return null;
    const params = new URLSearchParams({ limit: String(HISTORY_PAGE) });
    if (more && historyCursor) params.set("cursor", historyCursor);
    try {
      const { doc } = await api("GET", `/v1/me/calls?${params}`);
      const items = doc.items || doc.calls || [];
      historyCursor = doc.next_cursor || doc.next || null;
      historyItems = more ? historyItems.concat(items) : items;
      renderHistory();
      $("#history-error").textContent = "";
      completeHistory(items);
      return items;
    } catch (e) {
      $("#history-error").textContent = t("history.error", { msg: e.message });
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
    $(".title", section).textContent = t("detail.title", { id: callId });
    $(".error", section).textContent = "";
    for (const b of document.querySelectorAll("#history .entry")) {
      const open = $(".open", b);
      if (b.dataset.callId === callId) open.setAttribute("aria-current", "true");
      else open.removeAttribute("aria-current");
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
        if (response.status === 401) signOut(t("signin.out", { reason: err.message }));
        throw err;
      }
      const text = await response.text();
      if (detailCallId !== callId) return; // another entry was chosen meanwhile
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");
      const svg = doc.documentElement;
      if (svg.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
        throw new Error(t("detail.notSvg"));
      }
      $(".timeline", section).replaceChildren(document.importNode(svg, true));
      section.dataset.state = "shown";
      section.scrollIntoView({ block: "nearest" });
    } catch (e) {
      if (detailCallId !== callId) return;
      section.dataset.state = "error";
      $(".timeline", section).replaceChildren();
      $(".error", section).textContent = t("detail.error", { msg: e.message });
    }
  }

  function closeCallDetail() {
    detailCallId = null;
    const section = $("#call-detail");
    section.hidden = true;
    delete section.dataset.callId;
    delete section.dataset.state;
    $(".timeline", section).replaceChildren();
    for (const b of document.querySelectorAll("#history .open[aria-current]")) b.removeAttribute("aria-current");
  }

  // ------------------------------------------------------------------ do not disturb

  let dnd = null; // DoNotDisturb from GET/PUT/DELETE /v1/me/do-not-disturb

  async function loadDnd() {
    try {
      ({ doc: dnd } = await api("GET", "/v1/me/do-not-disturb"));
      $("#dnd").hidden = false;
      renderDnd();
    } catch (_) {
      $("#dnd").hidden = true; // a device's token, or an engine without the route
    }
  }

  function renderDnd() {
    if (!dnd) return;
    const toggle = $("#dnd-toggle");
    toggle.setAttribute("aria-pressed", String(!!dnd.own));
    $("#dnd").dataset.active = String(!!dnd.active);
    let text;
    if (!dnd.active) text = t("dnd.off");
    else if (dnd.by_manager && !dnd.own) text = t("dnd.byManager");
    else if (dnd.until) text = t("dnd.onUntil", { time: I.fmtTime(dnd.until) });
    else text = t("dnd.on");
    $("#dnd-state").textContent = text;
  }

  function dndUntil(choice) {
    const now = new Date();
    if (choice === "1h") return new Date(now.getTime() + 3600000);
    if (choice === "morning") {
      const at = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 7, 0, 0);
      if (at <= now) at.setDate(at.getDate() + 1);
      return at;
    }
    return null;
  }

  async function toggleDnd() {
    if (!dnd) return;
    try {
      if (dnd.own) ({ doc: dnd } = await api("DELETE", "/v1/me/do-not-disturb"));
      else {
        const until = dndUntil($("#dnd-duration").value);
        ({ doc: dnd } = await api("PUT", "/v1/me/do-not-disturb", { until: until && until.toISOString() }));
      }
      renderDnd();
    } catch (e) {
      $("#dnd-state").textContent = t("dnd.error", { msg: e.message });
    }
  }

  // ------------------------------------------------------------------ presence

  let presence = null; // Presence from GET/PUT /v1/me/presence or the "presence" push

  async function loadPresence() {
    try {
      ({ doc: presence } = await api("GET", "/v1/me/presence"));
      $("#away-toggle").hidden = $("#presence-state").hidden = false;
      renderPresence();
    } catch (_) {
      $("#away-toggle").hidden = $("#presence-state").hidden = true; // a device, or an older engine
    }
  }

  function renderPresence() {
    if (!presence) return;
    $("#away-toggle").setAttribute("aria-pressed", String(!!presence.away));
    let text;
    if (presence.status === "in_call") text = t("presence.inCall");
    else if (presence.away && presence.away_until) text = t("presence.awayUntil", { time: I.fmtTime(presence.away_until) });
    else if (presence.away) text = t("presence.awayOn");
    else text = t("presence.available");
    $("#presence-state").textContent = text;
  }

  async function toggleAway() {
    if (!presence) return;
    try {
      const status = presence.away ? "available" : "away";
      ({ doc: presence } = await api("PUT", "/v1/me/presence", { status }));
      renderPresence();
    } catch (e) {
      $("#presence-state").textContent = t("presence.error", { msg: e.message });
    }
  }

  // ------------------------------------------------------------------ language

  function applyLanguage() {
    document.documentElement.lang = I.lang();
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-aria-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
    }
    $("#lang").value = I.lang();
    document.title = t("app.name");
    setPushState(...pushState);
    for (const call of calls.values()) call.relabel();
    renderHistory();
    renderDnd();
    renderPresence();
    notice(noticeKey);
    if (detailCallId) $("#call-detail .title").textContent = t("detail.title", { id: detailCallId });
  }

  // ------------------------------------------------------------------ start

  function start() {
    const select = $("#lang");
    for (const { code, name } of I.LANGS) {
      const option = document.createElement("option");
      option.value = code;
      option.lang = code;
      option.textContent = name;
      select.append(option);
    }
    select.addEventListener("change", () => {
      I.setLang(select.value);
      applyLanguage();
    });
    applyLanguage();
    $("#sign-in-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const tok = $("#token-input").value.trim();
      $("#token-input").value = "";
      if (tok) signIn(tok);
    });
    $("#sign-out").addEventListener("click", () => signOut(""));
    $("#setup-enable").addEventListener("click", enableRinging);
    $("#setup-skip").addEventListener("click", skipSetup);
    $("#sound-unlock").addEventListener("click", unlockAudio);
    $("#dnd-toggle").addEventListener("click", toggleDnd);
    $("#away-toggle").addEventListener("click", toggleAway);
    $("#history-refresh").addEventListener("click", () => loadHistory(false));
    $("#history-more").addEventListener("click", () => loadHistory(true));
    $("#history").addEventListener("click", (ev) => {
      const entry = ev.target.closest("#history .entry");
      if (entry) showCallDetail(entry.dataset.callId);
    });
    $("#call-detail-close").addEventListener("click", closeCallDetail);
    registerWorker();
    const tok = tokenFromUrl() || sessionStorage.getItem(TOKEN_KEY);
    if (tok) signIn(tok);
    else signOut("");
  }

  start();
})();
