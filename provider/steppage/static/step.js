// The step page's live part. It listens on the sign-in's event stream and,
// once the sign-in is final, submits the same Continue form a user without
// JavaScript presses: both take one path on the server. On the approved
// page (data-auto) it submits Continue at once.
(function () {
  "use strict";
  function start() {
    var form = document.getElementById("continue");
    if (!form) {
      return;
    }
    var sent = false;
    function submit() {
      if (!sent) {
        sent = true;
        form.submit();
      }
    }
    if (form.hasAttribute("data-auto")) {
      submit();
      return;
    }
    var url = form.getAttribute("data-events");
    if (!url || !window.EventSource) {
      return;
    }
    var events = new EventSource(url);
    events.addEventListener("final", function () {
      events.close();
      submit();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
