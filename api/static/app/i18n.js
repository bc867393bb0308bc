// ringflow resident app: the message catalogue (issue 11 item 6). Every word the app shows
// comes from here: English and Simplified Chinese. The language is the one the resident
// chose (the switch in the header, kept in localStorage "ringflow.lang"), else the first
// of the browser's languages (navigator.languages) that has a catalogue, else English.
// Dates, times and durations are formatted with Intl for the chosen language.
//
// window.RingflowI18n = {LANGS, lang(), setLang(code), t(key, vars), fmtDateTime(date),
//   fmtDuration(seconds), fmtTime(date)}; t() fills "{name}" placeholders from vars.
"use strict";

(() => {
  const MESSAGES = {
    en: {
      "app.name": "ringflow",
      "lang.label": "Language",
      "signin.title": "Sign in",
      "signin.help":
        "Paste the resident token your property manager gave you (or open this page with ?token=...). It is kept in this tab only.",
      "signin.label": "Resident token",
      "signin.submit": "Sign in",
      "signin.bad": "That does not look like a ringflow token.",
      "signin.out": "Signed out: {reason}",
      "signin.badToken": "the token is not valid",
      "session.signOut": "Sign out",
      "session.you": "Signed in as {name}",
      "push.online": "online",
      "push.offline": "offline",
      "push.connecting": "connecting",
      "push.reconnecting": "reconnecting in {s} s",
      "setup.title": "Hear the door when it rings",
      "setup.why":
        "ringflow rings this device when a visitor calls your home from the door. Allow sound and notifications so that you hear a call even when this tab is in the background.",
      "setup.enable": "Allow sound and notifications",
      "setup.skip": "Not now",
      "setup.done": "Ringing is on: sound and notifications.",
      "setup.noNotify":
        "The ring sound is on. Notifications are blocked: allow them in this site's settings to be told of calls while the tab is in the background.",
      "setup.unsupported": "This browser shows no notifications here: keep this tab open to hear calls.",
      "sound.locked": "The ring sound is off until you tap the page.",
      "sound.unlock": "Turn the ring sound on",
      "dnd.title": "Do not disturb",
      "dnd.duration": "How long",
      "dnd.for1h": "For 1 hour",
      "dnd.untilMorning": "Until 7:00",
      "dnd.untilOff": "Until I switch it off",
      "dnd.off": "Calls ring this device.",
      "dnd.onUntil": "Do not disturb until {time}: calls do not ring you.",
      "dnd.on": "Do not disturb: calls do not ring you.",
      "dnd.byManager": "Do not disturb, set by the property manager.",
      "dnd.error": "Could not change do-not-disturb: {msg}",
      "presence.away": "I'm away",
      "presence.available": "Available: calls from every building you live in can ring you.",
      "presence.awayOn": "Away: calls skip you in every building until you are back.",
      "presence.awayUntil": "Away until {time}: calls skip you in every building.",
      "presence.inCall": "In a call: other calls find you busy.",
      "presence.error": "Could not change your presence: {msg}",
      "calls.label": "Calls",
      "call.incomingVideo": "Incoming video call",
      "call.incoming": "Incoming call",
      "call.from": "{place}",
      "call.unit": "Unit {unit}",
      "call.unknownCaller": "Unknown caller",
      "call.doorVideo": "Video from {name}",
      "call.selfView": "Your camera",
      "call.answer": "Answer",
      "call.decline": "Decline",
      "call.pass": "Pass",
      "call.passing": "Passed: ringing the next resident",
      "call.cannotPass": "Could not pass: {msg}",
      "call.callingBack": "Calling {name} back…",
      "history.callBack": "Call back",
      "history.callingBack": "Calling {name} back",
      "history.followUpFailed": "Not possible: {msg}",
      "call.openDoor": "Open door",
      "call.hangUp": "Hang up",
      "call.videoOn": "Send my video",
      "call.videoOff": "Stop my video",
      "call.details": "Details",
      "call.ringing": "Ringing · {s} s",
      "call.noAnswer": "No answer",
      "call.connecting": "Connecting...",
      "call.inCall": "In call",
      "call.declining": "Declining...",
      "call.hangingUp": "Hanging up...",
      "call.answeredElsewhere": "Answered on another screen",
      "call.answeredBy": "Answered by {name}",
      "call.over": "Call over: {msg}",
      "call.cannotAnswer": "Could not answer: {msg}",
      "call.cannotDecline": "Could not decline: {msg}",
      "call.cannotHangUp": "Could not hang up: {msg}",
      "call.noMic": "No microphone/camera ({why}): the visitor cannot hear you.",
      "call.needsHttps": "this page needs https",
      "call.media": "Connection problem: {msg}",
      "call.signedOut": "Signed out",
      "door.opening": "Opening the door...",
      "door.opened": "Door opened",
      "door.done": "Done: {detail}",
      "door.timeout": "The door did not answer (timeout).",
      "door.failed": "The door could not do it.",
      "door.failedWhy": "The door could not do it: {detail}.",
      "door.cannot": "This door cannot be opened from a call.",
      "door.notNow": "This door can be opened only after answering.",
      "door.error": "Could not open the door: {msg}",
      "end.hangUpVoip": "Call ended",
      "end.cancelVoip": "The visitor hung up",
      "end.rejectVoip": "Declined",
      "end.timeout": "Missed (no answer)",
      "end.busy": "Busy",
      "end.abortVoip": "Call dropped (connection lost)",
      "end.joinFailCaller": "The door could not connect",
      "end.joinFailListener": "Could not connect",
      "end.initiateFailed": "Nobody could be rung",
      "end.ended": "Ended",
      "end.cancelled": "Stopped ringing",
      "end.other": "{what} ({reason})",
      "notify.title": "{name} is calling",
      "notify.body": "Tap to see the door and answer.",
      "notify.bodyPlace": "{place}: tap to see the door and answer.",
      "history.title": "Your calls",
      "history.refresh": "Refresh",
      "history.more": "Older calls",
      "history.empty": "No calls yet.",
      "history.error": "Could not load your calls: {msg}",
      "history.open": "Show the call's timeline",
      "history.inProgress": "In progress",
      "history.youAnswered": "You answered",
      "history.answeredBy": "Answered by {name}",
      "history.missed": "Missed",
      "history.doorOpened": "Door opened",
      "history.talk": "Talk {d}",
      "history.video": "Video call",
      "history.voice": "Voice call",
      "history.noPicture": "No picture of the visitor",
      "history.snapshot": "The visitor at {name}",
      "history.today": "Today",
      "history.yesterday": "Yesterday",
      "detail.title": "Call {id}",
      "detail.close": "Close",
      "detail.figure": "The call's timeline: rooms, phases and events",
      "detail.error": "Could not load the call's timeline: {msg}",
      "detail.notSvg": "the answer is not an SVG picture",
    },
    "zh-CN": {
      "app.name": "ringflow",
      "lang.label": "语言",
      "signin.title": "登录",
      "signin.help": "粘贴物业管理方提供的住户令牌（或用 ?token=... 打开本页）。令牌只保存在此标签页中。",
      "signin.label": "住户令牌",
      "signin.submit": "登录",
      "signin.bad": "这不像是 ringflow 令牌。",
      "signin.out": "已退出：{reason}",
      "signin.badToken": "令牌无效",
      "session.signOut": "退出",
      "session.you": "当前用户：{name}",
      "push.online": "在线",
      "push.offline": "离线",
      "push.connecting": "连接中",
      "push.reconnecting": "{s} 秒后重新连接",
      "setup.title": "门口来电时听到铃声",
      "setup.why":
        "访客在门口呼叫您家时，ringflow 会在此设备上响铃。请允许声音和通知，这样即使此标签页在后台，您也能听到来电。",
      "setup.enable": "允许声音和通知",
      "setup.skip": "以后再说",
      "setup.done": "响铃已开启：声音和通知。",
      "setup.noNotify": "铃声已开启。通知被阻止：请在此网站的设置中允许通知，以便标签页在后台时也能收到来电提醒。",
      "setup.unsupported": "此浏览器在这里无法显示通知：请保持此标签页打开以听到来电。",
      "sound.locked": "点按页面之前，铃声处于关闭状态。",
      "sound.unlock": "打开铃声",
      "dnd.title": "免打扰",
      "dnd.duration": "持续时间",
      "dnd.for1h": "1 小时",
      "dnd.untilMorning": "到 7:00",
      "dnd.untilOff": "直到我关闭",
      "dnd.off": "来电会在此设备上响铃。",
      "dnd.onUntil": "免打扰至 {time}：来电不会呼叫您。",
      "dnd.on": "免打扰：来电不会呼叫您。",
      "dnd.byManager": "免打扰（由物业管理方设置）。",
      "dnd.error": "无法更改免打扰：{msg}",
      "presence.away": "我不在家",
      "presence.available": "在家：您所住各楼栋的来电都可以呼叫您。",
      "presence.awayOn": "不在家：在您回来之前，各楼栋的来电都会跳过您。",
      "presence.awayUntil": "不在家，直到 {time}：各楼栋的来电都会跳过您。",
      "presence.inCall": "通话中：其他来电会显示您忙线。",
      "presence.error": "无法更改您的在家状态：{msg}",
      "calls.label": "来电",
      "call.incomingVideo": "视频来电",
      "call.incoming": "来电",
      "call.from": "{place}",
      "call.unit": "{unit} 室",
      "call.unknownCaller": "未知来电",
      "call.doorVideo": "来自{name}的视频",
      "call.selfView": "您的摄像头",
      "call.answer": "接听",
      "call.decline": "拒绝",
      "call.pass": "跳过",
      "call.passing": "已跳过：正在呼叫下一位住户",
      "call.cannotPass": "无法跳过：{msg}",
      "call.callingBack": "正在回拨{name}…",
      "history.callBack": "回拨",
      "history.callingBack": "正在回拨{name}",
      "history.followUpFailed": "无法操作：{msg}",
      "call.openDoor": "开门",
      "call.hangUp": "挂断",
      "call.videoOn": "发送我的视频",
      "call.videoOff": "停止我的视频",
      "call.details": "详细信息",
      "call.ringing": "响铃中 · {s} 秒",
      "call.noAnswer": "无人接听",
      "call.connecting": "正在连接...",
      "call.inCall": "通话中",
      "call.declining": "正在拒绝...",
      "call.hangingUp": "正在挂断...",
      "call.answeredElsewhere": "已在其他屏幕上接听",
      "call.answeredBy": "{name} 已接听",
      "call.over": "通话已结束：{msg}",
      "call.cannotAnswer": "无法接听：{msg}",
      "call.cannotDecline": "无法拒绝：{msg}",
      "call.cannotHangUp": "无法挂断：{msg}",
      "call.noMic": "没有麦克风/摄像头（{why}）：访客听不到您。",
      "call.needsHttps": "此页面需要 https",
      "call.media": "连接问题：{msg}",
      "call.signedOut": "已退出",
      "door.opening": "正在开门...",
      "door.opened": "门已打开",
      "door.done": "完成：{detail}",
      "door.timeout": "门禁没有响应（超时）。",
      "door.failed": "门禁无法执行。",
      "door.failedWhy": "门禁无法执行：{detail}。",
      "door.cannot": "此门无法在通话中打开。",
      "door.notNow": "此门只能在接听后打开。",
      "door.error": "无法开门：{msg}",
      "end.hangUpVoip": "通话结束",
      "end.cancelVoip": "访客已挂断",
      "end.rejectVoip": "已拒绝",
      "end.timeout": "未接（无人接听）",
      "end.busy": "忙线",
      "end.abortVoip": "通话中断（连接丢失）",
      "end.joinFailCaller": "门禁无法连接",
      "end.joinFailListener": "无法连接",
      "end.initiateFailed": "无人可呼叫",
      "end.ended": "已结束",
      "end.cancelled": "已停止响铃",
      "end.other": "{what}（{reason}）",
      "notify.title": "{name} 来电",
      "notify.body": "点按查看门口并接听。",
      "notify.bodyPlace": "{place}：点按查看门口并接听。",
      "history.title": "通话记录",
      "history.refresh": "刷新",
      "history.more": "更早的通话",
      "history.empty": "还没有通话。",
      "history.error": "无法加载通话记录：{msg}",
      "history.open": "查看通话时间线",
      "history.inProgress": "进行中",
      "history.youAnswered": "您已接听",
      "history.answeredBy": "{name} 已接听",
      "history.missed": "未接",
      "history.doorOpened": "已开门",
      "history.talk": "通话 {d}",
      "history.video": "视频通话",
      "history.voice": "语音通话",
      "history.noPicture": "没有访客照片",
      "history.snapshot": "{name}的访客",
      "history.today": "今天",
      "history.yesterday": "昨天",
      "detail.title": "通话 {id}",
      "detail.close": "关闭",
      "detail.figure": "通话时间线：房间、阶段和事件",
      "detail.error": "无法加载通话时间线：{msg}",
      "detail.notSvg": "返回的不是 SVG 图片",
    },
  };

  const LANGS = [
    { code: "en", name: "English" },
    { code: "zh-CN", name: "简体中文" },
  ];
  const LANG_KEY = "ringflow.lang";

  function match(tag) {
    // "zh", "zh-CN", "zh-Hans-SG" -> zh-CN; "en-GB" -> en; else null
    const t = String(tag || "").toLowerCase();
    if (t.startsWith("zh")) return "zh-CN";
    if (t.startsWith("en")) return "en";
    return null;
  }

  function initial() {
    let stored = null;
    try {
      stored = localStorage.getItem(LANG_KEY);
    } catch (_) {
      stored = null;
    }
    if (stored && MESSAGES[stored]) return stored;
    for (const tag of navigator.languages || [navigator.language]) {
      const code = match(tag);
      if (code) return code;
    }
    return "en";
  }

  let current = initial();

  function t(key, vars) {
    const table = MESSAGES[current] || MESSAGES.en;
    let text = table[key];
    if (text === undefined) text = MESSAGES.en[key];
    if (text === undefined) return key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  }

  function fmtDateTime(date) {
    // "Today, 14:05" / "Yesterday, 09:12" / "12 Mar 2026, 18:40" in the chosen language
    const d = date instanceof Date ? date : new Date(date);
    const now = new Date();
    const days = Math.round(
      (new Date(now.getFullYear(), now.getMonth(), now.getDate()) -
        new Date(d.getFullYear(), d.getMonth(), d.getDate())) /
        86400000,
    );
    const time = new Intl.DateTimeFormat(current, { timeStyle: "short" }).format(d);
    if (days === 0) return `${t("history.today")} ${time}`;
    if (days === 1) return `${t("history.yesterday")} ${time}`;
    return new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "short" }).format(d);
  }

  function fmtTime(date) {
    const d = date instanceof Date ? date : new Date(date);
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    const opts = sameDay ? { timeStyle: "short" } : { weekday: "short", hour: "numeric", minute: "2-digit" };
    return new Intl.DateTimeFormat(current, opts).format(d);
  }

  function fmtDuration(seconds) {
    // talk time: "1 min 5 s" / "1分钟5秒" (Intl.DurationFormat where the browser has it)
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    const parts = { hours: Math.floor(s / 3600), minutes: Math.floor((s % 3600) / 60), seconds: s % 60 };
    if (typeof Intl.DurationFormat === "function") {
      try {
        return new Intl.DurationFormat(current, { style: "narrow" }).format(parts);
      } catch (_) {
        // fall through to the unit formatter
      }
    }
    const units = [
      ["hour", parts.hours],
      ["minute", parts.minutes],
      ["second", parts.seconds],
    ].filter(([, n], i, all) => n > 0 || (i === all.length - 1 && all.every(([, m]) => m === 0)));
    return units
      .map(([unit, n]) => new Intl.NumberFormat(current, { style: "unit", unit, unitDisplay: "narrow" }).format(n))
      .join(" ");
  }

  function setLang(code) {
    if (!MESSAGES[code]) return;
    current = code;
    try {
      localStorage.setItem(LANG_KEY, code);
    } catch (_) {
      // private mode: the choice lasts for this page
    }
  }

  window.RingflowI18n = {
    LANGS,
    MESSAGES,
    lang: () => current,
    setLang,
    t,
    fmtDateTime,
    fmtTime,
    fmtDuration,
  };
})();
