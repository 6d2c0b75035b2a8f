package apns

import (
	"net/http"
	"testing"
)

func TestDefaultClientSpeaksOnlyHTTP2(t *testing.T) {
	c := noRedirects(nil)
	tr, ok := c.Transport.(*http.Transport)
	if !ok || tr.Protocols == nil || !tr.Protocols.HTTP2() || tr.Protocols.HTTP1() || tr.Protocols.UnencryptedHTTP2() {
		t.Fatalf("default transport protocols %v, want HTTP/2 over TLS only", tr.Protocols)
	}
	if c.CheckRedirect == nil {
		t.Error("default client follows redirects")
	}
	// A caller's client is copied, not changed.
	mine := &http.Client{}
	if got := noRedirects(mine); got == mine || mine.CheckRedirect != nil || got.CheckRedirect == nil {
		t.Error("caller's client was changed or not copied")
	}
}
