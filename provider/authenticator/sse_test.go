package authenticator

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll parses a whole stream.
func readAll(r io.Reader) ([]SSEEvent, error) {
	sr := NewSSEReader(r)
	var out []SSEEvent
	for {
		ev, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestSSEReader(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []SSEEvent
	}{
		{"one event", "event: request\ndata: {\"id\":\"a\"}\n\n",
			[]SSEEvent{{Type: "request", Data: `{"id":"a"}`}}},
		{"default type, no space after colon", "data:x\n\n",
			[]SSEEvent{{Type: "message", Data: "x"}}},
		{"only one leading space is stripped", "data:  two\n\n",
			[]SSEEvent{{Type: "message", Data: " two"}}},
		{"multi-line data", "data: a\ndata: b\ndata\n\n",
			[]SSEEvent{{Type: "message", Data: "a\nb\n"}}},
		{"comments and unknown fields are ignored", ": keep-alive\nretry: 1000\nfoo: bar\nevent: resolved\ndata: 1\n\n",
			[]SSEEvent{{Type: "resolved", Data: "1"}}},
		{"CRLF and CR line ends", "event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r",
			[]SSEEvent{{Type: "a", Data: "1"}, {Type: "b", Data: "2"}}},
		{"event without data is not dispatched and its type is reset", "event: a\n\ndata: 1\n\n",
			[]SSEEvent{{Type: "message", Data: "1"}}},
		{"id carries over", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]SSEEvent{{Type: "message", Data: "a", ID: "7"}, {Type: "message", Data: "b", ID: "7"}, {Type: "message", Data: "c"}}},
		{"unterminated event at EOF is dropped", "data: a\n\ndata: b\n",
			[]SSEEvent{{Type: "message", Data: "a"}}},
		{"blank lines between events", "\n\n\ndata: a\n\n\n\n", []SSEEvent{{Type: "message", Data: "a"}}},
		{"empty stream", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// One byte at a time too: line ends split across reads.
			for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
				got, err := readAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("got %q, want %q", got, c.want)
				}
			}
		})
	}
}

func TestSSEReaderLineTooLong(t *testing.T) {
	in := "data: " + strings.Repeat("x", MaxSSELine+1) + "\n\n"
	_, err := readAll(strings.NewReader(in))
	if !errors.Is(err, ErrSSELineTooLong) {
		t.Fatalf("error = %v, want ErrSSELineTooLong", err)
	}
}

func TestSSEReaderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom))
	got, err := readAll(r)
	if !errors.Is(err, boom) || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestDecodeEvent(t *testing.T) {
	ev, ok, err := decodeEvent(SSEEvent{Type: "request", Data: `{"id":"s1","client":"Mail","methods":["push"],"nonce":"n"}`})
	if err != nil || !ok || ev.Kind != EventRequest || ev.Request.ID != "s1" || ev.Request.Client != "Mail" {
		t.Fatalf("request: %+v %v %v", ev, ok, err)
	}
	ev, ok, err = decodeEvent(SSEEvent{Type: "resolved", Data: `{"id":"s1","status":"approved"}`})
	if err != nil || !ok || ev.Kind != EventResolved || ev.Resolved.Status != "approved" {
		t.Fatalf("resolved: %+v %v %v", ev, ok, err)
	}
	if _, ok, err := decodeEvent(SSEEvent{Type: "ping", Data: "x"}); ok || err != nil {
		t.Fatalf("unknown event: %v %v", ok, err)
	}
	for _, bad := range []SSEEvent{{Type: "request", Data: "{"}, {Type: "request", Data: `{"id":"s1"}`}, {Type: "resolved", Data: `{}`}} {
		if _, _, err := decodeEvent(bad); err == nil {
			t.Errorf("decodeEvent(%+v) accepted it", bad)
		}
	}
}

// FuzzSSEReader feeds arbitrary bytes to the parser: it must not panic or
// loop, every event it returns must obey the format's rules, and the events
// written back out in canonical form must parse to the same events.
func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{
		"event: request\ndata: {\"id\":\"a\"}\n\n",
		"data: a\r\ndata: b\r\n\r\n",
		": comment\rid: 1\rdata\r\r",
		"event: resolved\ndata: {\"id\":\"a\",\"status\":\"approved\"}\n\ndata: x",
		"\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readAll(strings.NewReader(string(in)))
		if err != nil {
			t.Fatalf("read error on an in-memory stream: %v", err)
		}
		var canon strings.Builder
		for _, ev := range got {
			if ev.Type == "" || strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n\x00") || strings.ContainsRune(ev.Data, '\r') {
				t.Fatalf("malformed event %q", ev)
			}
			canon.WriteString("id: " + ev.ID + "\nevent: " + ev.Type + "\n")
			for _, line := range strings.Split(ev.Data, "\n") {
				canon.WriteString("data: " + line + "\n")
			}
			canon.WriteString("\n")
		}
		again, err := readAll(strings.NewReader(canon.String()))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("canonical form %q parses to %q (%v), want %q", canon.String(), again, err, got)
		}
		// Whatever the stream holds, decoding its events never panics.
		for _, ev := range got {
			decodeEvent(ev)
		}
	})
}
