package authenticator

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// A backup is a JSON envelope that anyone may read:
//
//	{"v":1,"kdf":"argon2id","argon2":{"time":3,"memory_kib":65536,"threads":4},
//	 "salt":"…","nonce":"…","ciphertext":"…"}
//
// The ciphertext is AES-256-GCM over the enrollments (server, device and
// account ids, username, private key), under a key derived from the user's
// passphrase with Argon2id and the envelope's salt and parameters. The
// envelope's header (everything but the ciphertext) is bound to it as
// additional data. Binary values are unpadded base64url. The server never
// sees the passphrase or the key.

// BackupVersion is the version of the backup envelope this package writes
// and the only one it reads.
const BackupVersion = 1

// Passphrase bounds. MinPassphraseLen counts characters, not bytes.
const (
	MinPassphraseLen = 10
	MaxPassphraseLen = 1024 // bytes
)

// MaxBackupSize bounds the backup file Restore and OpenBackup read: a full
// state file, base64-encoded, with room to spare.
const MaxBackupSize = 8 << 20

// Errors of backup and restore, for errors.Is.
var (
	// ErrWrongPassphrase is a backup that does not open: the passphrase is
	// wrong, or the file was altered. Nothing was changed.
	ErrWrongPassphrase = errors.New("wrong passphrase, or the backup file was altered")
	// ErrInvalidBackup is a file that is not a backup this version can read.
	ErrInvalidBackup = errors.New("not a keystep backup this version can read")
	// ErrWeakPassphrase is a passphrase too short (or too long) to protect a backup.
	ErrWeakPassphrase = errors.New("unsuitable passphrase")
	// ErrStateNotEmpty is a restore into a state file that already holds
	// enrollments: restoring never mixes or overwrites keys.
	ErrStateNotEmpty = errors.New("the state file already holds enrollments")
)

// KDFParams are the Argon2id parameters of a backup. They travel in its
// envelope, so a backup stays readable when the defaults change.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes over the memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // lanes
}

// DefaultKDF is what Backup uses: 3 passes over 64 MiB with 4 lanes, above
// OWASP's recommended minimum for Argon2id (19 MiB, 2 passes, 1 lane).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// Bounds on the parameters a backup may ask for: below them a backup would
// be weak; above them a crafted file could exhaust the phone's memory or
// time before the passphrase is even checked.
const (
	minKDFTime      = 2
	maxKDFTime      = 10
	minKDFMemoryKiB = 19 * 1024
	maxKDFMemoryKiB = 256 * 1024
	maxKDFThreads   = 16
)

// check refuses parameters outside the bounds.
func (p KDFParams) check() error {
	switch {
	case p.Time < minKDFTime || p.Time > maxKDFTime:
		return fmt.Errorf("%w: argon2 time %d is outside %d to %d", ErrInvalidBackup, p.Time, minKDFTime, maxKDFTime)
	case p.MemoryKiB < minKDFMemoryKiB || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("%w: argon2 memory %d KiB is outside %d to %d KiB", ErrInvalidBackup, p.MemoryKiB, minKDFMemoryKiB, maxKDFMemoryKiB)
	case p.Threads < 1 || p.Threads > maxKDFThreads:
		return fmt.Errorf("%w: argon2 threads %d is outside 1 to %d", ErrInvalidBackup, p.Threads, maxKDFThreads)
	}
	return nil
}

const (
	kdfName   = "argon2id"
	saltLen   = 16
	nonceLen  = 12 // GCM's standard nonce
	keyLen    = 32 // AES-256
	gcmTagLen = 16
)

// argon2IDKey derives the backup key; tests replace it to prove that a bad
// envelope is refused before any key is derived.
var argon2IDKey = argon2.IDKey

// b64strict decodes only the canonical encoding, so one envelope has one
// spelling and its header one meaning.
var b64strict = base64.RawURLEncoding.Strict()

// envelope is the backup file as JSON.
type envelope struct {
	V          int       `json:"v"`
	KDF        string    `json:"kdf"`
	Argon2     KDFParams `json:"argon2"`
	Salt       string    `json:"salt"`
	Nonce      string    `json:"nonce"`
	Ciphertext string    `json:"ciphertext"`
}

// sealed is a parsed envelope whose header has been checked.
type sealed struct {
	kdf        KDFParams
	salt       []byte
	nonce      []byte
	ciphertext []byte
}

// header is the additional data GCM binds to the ciphertext: every field of
// the envelope but the ciphertext, so changing any of them fails the open.
func (s sealed) header() []byte {
	return fmt.Appendf(nil, "keystep-backup-v%d\n%s\n%d\n%d\n%d\n%s\n%s", BackupVersion, kdfName,
		s.kdf.Time, s.kdf.MemoryKiB, s.kdf.Threads, b64strict.EncodeToString(s.salt), b64strict.EncodeToString(s.nonce))
}

// parseEnvelope reads a backup file's envelope and checks everything that
// can be checked without the passphrase: size, version, KDF and its
// parameters, salt and nonce lengths. It never derives a key.
func parseEnvelope(blob []byte) (sealed, error) {
	if len(bytes.TrimSpace(blob)) == 0 {
		return sealed{}, fmt.Errorf("%w: the file is empty", ErrInvalidBackup)
	}
	if len(blob) > MaxBackupSize {
		return sealed{}, fmt.Errorf("%w: the file is larger than %d bytes", ErrInvalidBackup, MaxBackupSize)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(blob))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return sealed{}, fmt.Errorf("%w: %v", ErrInvalidBackup, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return sealed{}, fmt.Errorf("%w: data after the envelope", ErrInvalidBackup)
	}
	if env.V != BackupVersion {
		return sealed{}, fmt.Errorf("%w: version %d (this keystep reads version %d)", ErrInvalidBackup, env.V, BackupVersion)
	}
	if env.KDF != kdfName {
		return sealed{}, fmt.Errorf("%w: key derivation %q (this keystep uses %s)", ErrInvalidBackup, env.KDF, kdfName)
	}
	if err := env.Argon2.check(); err != nil {
		return sealed{}, err
	}
	s := sealed{kdf: env.Argon2}
	var err error
	if s.salt, err = b64strict.DecodeString(env.Salt); err != nil || len(s.salt) != saltLen {
		return sealed{}, fmt.Errorf("%w: salt must be %d bytes of unpadded base64url", ErrInvalidBackup, saltLen)
	}
	if s.nonce, err = b64strict.DecodeString(env.Nonce); err != nil || len(s.nonce) != nonceLen {
		return sealed{}, fmt.Errorf("%w: nonce must be %d bytes of unpadded base64url", ErrInvalidBackup, nonceLen)
	}
	if s.ciphertext, err = b64strict.DecodeString(env.Ciphertext); err != nil || len(s.ciphertext) < gcmTagLen {
		return sealed{}, fmt.Errorf("%w: ciphertext must be unpadded base64url of at least %d bytes", ErrInvalidBackup, gcmTagLen)
	}
	return s, nil
}

// CheckPassphrase refuses a passphrase that cannot protect a backup: fewer
// than MinPassphraseLen characters, more than MaxPassphraseLen bytes, or
// not valid UTF-8.
func CheckPassphrase(p string) error {
	switch {
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: the passphrase is not valid UTF-8", ErrWeakPassphrase)
	case utf8.RuneCountInString(p) < MinPassphraseLen:
		return fmt.Errorf("%w: the passphrase must be at least %d characters", ErrWeakPassphrase, MinPassphraseLen)
	case len(p) > MaxPassphraseLen:
		return fmt.Errorf("%w: the passphrase must be at most %d bytes", ErrWeakPassphrase, MaxPassphraseLen)
	}
	return nil
}

// content is the plaintext of a backup.
type content struct {
	V           int          `json:"v"`
	CreatedAt   time.Time    `json:"created_at"`
	Enrollments []Enrollment `json:"enrollments"`
}

// check refuses content that cannot be restored.
func (c content) check() error {
	if c.V != BackupVersion {
		return fmt.Errorf("%w: content version %d", ErrInvalidBackup, c.V)
	}
	if len(c.Enrollments) == 0 {
		return fmt.Errorf("%w: it holds no enrollment", ErrInvalidBackup)
	}
	for i, e := range c.Enrollments {
		if err := flows.CheckServerURL(e.Server); err != nil {
			return fmt.Errorf("%w: enrollment %d: server: %v", ErrInvalidBackup, i+1, err)
		}
		if e.DeviceID == "" || e.AccountID == "" {
			return fmt.Errorf("%w: enrollment %d names no device or account", ErrInvalidBackup, i+1)
		}
		if _, err := e.Key(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidBackup, err)
		}
		if slices.ContainsFunc(c.Enrollments[:i], func(x Enrollment) bool { return x.Server == e.Server && x.AccountID == e.AccountID }) {
			return fmt.Errorf("%w: %s is in it twice", ErrInvalidBackup, e.Label())
		}
	}
	return nil
}

// aead is AES-256-GCM under key.
func aead(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts c under passphrase with the given KDF parameters.
func seal(c content, passphrase string, kdf KDFParams) ([]byte, error) {
	if err := CheckPassphrase(passphrase); err != nil {
		return nil, err
	}
	if err := kdf.check(); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	s := sealed{kdf: kdf, salt: make([]byte, saltLen), nonce: make([]byte, nonceLen)}
	if _, err := rand.Read(s.salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(s.nonce); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	key := argon2IDKey([]byte(passphrase), s.salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, keyLen)
	defer clear(key)
	gcm, err := aead(key)
	if err != nil {
		return nil, err
	}
	s.ciphertext = gcm.Seal(nil, s.nonce, plain, s.header())
	out, err := json.MarshalIndent(envelope{
		V: BackupVersion, KDF: kdfName, Argon2: kdf, Salt: b64strict.EncodeToString(s.salt),
		Nonce: b64strict.EncodeToString(s.nonce), Ciphertext: b64strict.EncodeToString(s.ciphertext),
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// OpenBackup decrypts a backup made by Backup and returns its enrollments.
// A wrong passphrase or an altered file gives ErrWrongPassphrase; a file
// that is not a backup, or that asks for KDF parameters out of bounds, gives
// ErrInvalidBackup before any key is derived.
func OpenBackup(blob []byte, passphrase string) ([]Enrollment, error) {
	s, err := parseEnvelope(blob)
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	if passphrase == "" || len(passphrase) > MaxPassphraseLen {
		return nil, fmt.Errorf("open backup: %w", ErrWrongPassphrase)
	}
	key := argon2IDKey([]byte(passphrase), s.salt, s.kdf.Time, s.kdf.MemoryKiB, s.kdf.Threads, keyLen)
	defer clear(key)
	gcm, err := aead(key)
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	plain, err := gcm.Open(nil, s.nonce, s.ciphertext, s.header())
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", ErrWrongPassphrase)
	}
	defer clear(plain)
	var c content
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("open backup: %w: content: %v", ErrInvalidBackup, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	return c.Enrollments, nil
}

// Backup returns an encrypted backup of every enrollment on this device,
// private keys included, under a key derived from passphrase (at least
// MinPassphraseLen characters). Keep it off the phone; Restore on a new
// phone moves every account to that phone.
func (a *Authenticator) Backup(passphrase string) ([]byte, error) {
	if err := CheckPassphrase(passphrase); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	es, err := a.Enrollments()
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if len(es) == 0 {
		return nil, errors.New("backup: no account is enrolled on this device; there is nothing to back up")
	}
	b, err := seal(content{V: BackupVersion, CreatedAt: a.now().UTC().Truncate(time.Second), Enrollments: es}, passphrase, DefaultKDF)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return b, nil
}

// Restored is what Restore did with one enrollment of the backup.
type Restored struct {
	Old Enrollment // as it was in the backup
	New Enrollment // the enrollment on this device; zero when Err is set
	Err error
}

// Restore sets this device up from a backup made on another: for each
// enrollment in it, it makes a new key and asks the server, with a call
// signed by the backed-up key, to move the account to the new key; the old
// device is unregistered by that act. The state file must hold no
// enrollment yet (ErrStateNotEmpty). A wrong passphrase or an altered file
// gives ErrWrongPassphrase and changes nothing, here or at any server.
//
// Each account that was moved is saved at once; one that could not be (its
// old device was already unregistered, the account is suspended, the
// server is down) is reported in its Restored.Err and in the joined error,
// and the others are still restored. Should a server move an account but
// its answer never arrive, the backed-up key no longer works there: the
// user then needs a new invitation, as without a backup.
func (a *Authenticator) Restore(ctx context.Context, blob []byte, passphrase string) ([]Restored, error) {
	st, err := LoadState(a.path)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if n := len(st.Enrollments); n > 0 {
		return nil, fmt.Errorf("restore: %s holds %d enrollment(s): %w; restore into a new state file", a.path, n, ErrStateNotEmpty)
	}
	es, err := OpenBackup(blob, passphrase)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	out := make([]Restored, 0, len(es))
	var errs []error
	for _, old := range es {
		r := Restored{Old: old}
		r.New, r.Err = a.rebind(ctx, old)
		if r.Err == nil {
			r.Err = a.update(func(s *State) error {
				s.Enrollments = slices.DeleteFunc(s.Enrollments, func(x Enrollment) bool {
					return x.Server == r.New.Server && x.AccountID == r.New.AccountID
				})
				s.Enrollments = append(s.Enrollments, r.New)
				return nil
			})
			if r.Err != nil {
				r.Err = fmt.Errorf("moved to device %s, but could not save it: %w", r.New.DeviceID, r.Err)
			}
		}
		if r.Err != nil {
			r.Err = fmt.Errorf("%s: %w", old.Label(), r.Err)
			errs = append(errs, r.Err)
			r.New = Enrollment{}
		}
		out = append(out, r)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("restore: %d of %d accounts not restored: %w", len(errs), len(es), errors.Join(errs...))
	}
	return out, nil
}

// rebind makes a new key and moves old's account to it at old's server.
func (a *Authenticator) rebind(ctx context.Context, old Enrollment) (Enrollment, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Enrollment{}, fmt.Errorf("new key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return Enrollment{}, err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Enrollment{}, err
	}
	msg, err := flows.RebindPayload(old.Server, old.DeviceID, pub)
	if err != nil {
		return Enrollment{}, err
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		return Enrollment{}, err
	}
	body, err := json.Marshal(api.RebindRequest{PublicKey: b64.EncodeToString(pub), Signature: b64.EncodeToString(sig), Name: a.name})
	if err != nil {
		return Enrollment{}, err
	}
	var res api.RebindResponse
	if err := a.send(ctx, &old, old.Server, http.MethodPost, api.PathRebind, body, &res); err != nil {
		return Enrollment{}, fmt.Errorf("rebind: %w", err)
	}
	if res.DeviceID == "" || res.Account.ID != old.AccountID {
		return Enrollment{}, fmt.Errorf("rebind: the server's answer names device %q of account %q, not one of account %q", res.DeviceID, res.Account.ID, old.AccountID)
	}
	return Enrollment{
		Server: old.Server, DeviceID: res.DeviceID, AccountID: res.Account.ID, Username: res.Account.Username,
		DisplayName: res.Account.DisplayName, EnrolledAt: a.now().UTC().Truncate(time.Second), PrivateKey: b64.EncodeToString(priv),
	}, nil
}
