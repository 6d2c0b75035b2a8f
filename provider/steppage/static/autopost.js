// Submits the auto-posting form (an OpenID Connect form_post or SAML POST
// binding answer) once the page has loaded. Without JavaScript the page
// shows a button in <noscript> instead.
(function () {
  "use strict";
  function go() {
    var form = document.getElementById("autopost");
    if (form) {
      form.submit();
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", go);
  } else {
    go();
  }
})();
