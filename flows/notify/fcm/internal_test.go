package fcm

import (
	"strings"
	"testing"
)

// FuzzParseServiceAccount: any key file is either refused with an error
// that quotes none of it, or gives every field keystep needs.
func FuzzParseServiceAccount(f *testing.F) {
	f.Add([]byte(`{"type":"service_account","project_id":"p-1","private_key_id":"k1","private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n","client_email":"a@p-1.iam.gserviceaccount.com","token_uri":"https://oauth2.googleapis.com/token"}`))
	f.Add([]byte(`{"type":"authorized_user"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		sa, err := parseServiceAccount(b)
		if err != nil {
			if sa != nil {
				t.Fatal("account with an error")
			}
			if !strings.HasPrefix(err.Error(), "service account: ") || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error %q", err)
			}
			return
		}
		if sa.projectID == "" || sa.clientEmail == "" || sa.keyID == "" || sa.key == nil || sa.key.N.BitLen() < minRSABits {
			t.Fatalf("account %+v", sa)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]int{"30": 30, " 5 ": 5, "0": 0, "-1": 0, "86401": 0, "Wed, 21 Oct 2015 07:28:00 GMT": 0, "": 0} {
		if got := retryAfter(in); got.Seconds() != float64(want) {
			t.Errorf("retryAfter(%q) = %v, want %ds", in, got, want)
		}
	}
}
