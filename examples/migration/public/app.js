// Talks to the v2 Quart API over a websocket from the legacy pages.
(function () {
  var status = document.getElementById("ws-status");
  if (!status) return;
  var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v2/ws");
  ws.onmessage = function (e) { status.textContent = e.data; };
  ws.onclose = function () { status.textContent = "closed"; };
})();
