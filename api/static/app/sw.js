// ringflow resident app: the service worker (issue 11 item 1). Registered by app.js with
// scope /app (the response carries Service-Worker-Allowed: /app). It makes the app
// installable, and its registration shows the system notification of a ringing call (the
// page calls registration.showNotification with tag = call id, so a call has one
// notification, and closes it when the call stops ringing anywhere). It caches nothing:
// the app is useless without the API, and a stale copy after an upgrade would be worse.
// A click on the notification focuses an open /app window (or opens one) and tells it
// {type: "show-call", call_id}.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("notificationclick", (event) => {
  const callId = event.notification.data && event.notification.data.call_id;
  event.notification.close();
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const page = windows.find((w) => new URL(w.url).pathname === "/app");
      if (page) {
        await page.focus();
        page.postMessage({ type: "show-call", call_id: callId });
      } else {
        await self.clients.openWindow("/app");
      }
    })(),
  );
});
