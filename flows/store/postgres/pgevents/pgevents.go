// Package pgevents is flows.Events for several instances on one PostgreSQL
// database, on LISTEN/NOTIFY.
//
// Publish wakes this process's subscribers at once and sends
// pg_notify(Channel, topic) so that the other instances wake theirs. Each
// process keeps one dedicated connection that LISTENs on Channel and fans
// the notifications out to its local subscribers. A notification carries
// no data (flows re-reads the store), so a lost one costs only latency:
// when the listening connection drops, and again once it is back, every
// local subscriber is woken so that it re-checks the store, and flows.Await
// re-reads on its own every flows.AwaitRecheck. A listening connection
// quiet for 30 s is pinged, so that one the network dropped silently is
// replaced too.
package pgevents

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/keystep/keystep/flows"
)

// Channel is the one NOTIFY channel keystep uses; the payload is the
// sending instance's id, a space, and the topic.
const Channel = "keystep_events"

// maxPayload is PostgreSQL's limit on a NOTIFY payload (8000 bytes), less
// room for the instance id. keystep's topics are far shorter.
const maxPayload = 7900

// Reconnection backoff of the listening connection.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Timeouts of the connections.
const (
	publishTimeout = 5 * time.Second  // one pg_notify
	connectTimeout = 10 * time.Second // opening the listening connection
	idlePing       = 30 * time.Second // a quiet listening connection is pinged this often
	pingTimeout    = 5 * time.Second
	closeTimeout   = time.Second
)

// Events is flows.Events shared by every instance on one database. Close
// it when done.
type Events struct {
	dsn   string
	id    string // this instance, to skip its own notifications
	db    *sql.DB
	clock flows.Clock
	log   *slog.Logger

	local *flows.LocalEvents // this instance's subscribers

	cancel context.CancelFunc
	done   chan struct{}

	// state, if set, is told when the listening connection comes up
	// (true) or goes down (false); tests follow the listener with it.
	state func(connected bool, backendPID uint32)
	// idle is how long the listening connection may stay quiet before a
	// ping (idlePing; tests shorten it), and pinged is told of each ping.
	idle   time.Duration
	pinged func(error)
}

// Option changes how Open builds Events.
type Option func(*Events)

// WithClock sets the clock the reconnection backoff waits on.
func WithClock(c flows.Clock) Option { return func(e *Events) { e.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Events) { e.log = l } }

// withState sets the hook tests follow the listening connection with.
func withState(f func(connected bool, backendPID uint32)) Option {
	return func(e *Events) { e.state = f }
}

// Open connects to the database named by dsn (as pgx reads it) and starts
// listening. It fails if the database cannot be reached; once it is open,
// a lost connection is reopened with backoff in the background.
func Open(ctx context.Context, dsn string, opts ...Option) (*Events, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("pgevents: instance id: %w", err)
	}
	e := &Events{dsn: dsn, id: hex.EncodeToString(b[:]), clock: flows.SystemClock{}, log: slog.Default(),
		local: flows.NewLocalEvents(), done: make(chan struct{}), idle: idlePing}
	for _, o := range opts {
		o(e)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("pgevents: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pgevents: connect: %w", err)
	}
	e.db = db
	conn, err := e.connect(ctx)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.listen(lctx, conn)
	return e, nil
}

// Close stops listening and closes the connections.
func (e *Events) Close() error {
	e.cancel()
	<-e.done
	return e.db.Close()
}

// Publish wakes this instance's subscribers of topic at once and notifies
// the other instances. A failed notification is logged: the others see the
// change at their next re-check.
func (e *Events) Publish(topic string) {
	e.wake(topic)
	if len(topic) > maxPayload {
		e.log.Error("event topic too long for NOTIFY; other instances will see it at their next re-check", "len", len(topic))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := e.db.ExecContext(ctx, "SELECT pg_notify($1, $2)", Channel, e.id+" "+topic); err != nil {
		e.log.Warn("NOTIFY failed; other instances will see the change at their next re-check", "topic", topic, "err", err)
	}
}

// Subscribe starts watching topic; the channel receives after each Publish
// of topic on any instance (wake-ups coalesce), and whenever a notification
// may have been lost.
func (e *Events) Subscribe(topic string) (<-chan struct{}, func()) {
	return e.local.Subscribe(topic)
}

// wake wakes the local subscribers of topic without blocking.
func (e *Events) wake(topic string) { e.local.Publish(topic) }

// wakeAll wakes every local subscriber: a notification may have been lost.
func (e *Events) wakeAll() { e.local.PublishAll() }

// connect opens the listening connection.
func (e *Events) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return nil, fmt.Errorf("pgevents: listening connection: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("pgevents: LISTEN: %w", err)
	}
	return conn, nil
}

// listen receives notifications on conn until ctx ends, reconnecting with
// backoff when the connection drops.
func (e *Events) listen(ctx context.Context, conn *pgx.Conn) {
	defer close(e.done)
	failures := 0
	for {
		if conn != nil {
			failures = 0
			if e.state != nil {
				e.state(true, conn.PgConn().PID())
			}
			err := e.receive(ctx, conn)
			cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			_ = conn.Close(cctx)
			cancel()
			conn = nil
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("lost the LISTEN connection; reconnecting", "err", err)
			if e.state != nil {
				e.state(false, 0)
			}
		}
		// Disconnected: whatever was notified meanwhile is lost.
		e.wakeAll()
		if failures > 0 {
			select {
			case <-ctx.Done():
				return
			case <-e.clock.After(backoff(failures)):
			}
		}
		c, err := e.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			e.log.Warn("LISTEN connection failed; retrying", "err", err, "retry_in", backoff(failures))
			continue
		}
		conn = c
		e.log.Info("LISTEN connection back")
		e.wakeAll() // what was notified before the LISTEN took effect is lost
	}
}

// receive fans the notifications of conn out until it fails. A
// connection quiet for idlePing is pinged, so that one the network lost
// without a word is noticed (and replaced) within seconds.
func (e *Events) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, e.idle)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil && idle { // pgx keeps the connection after a timeout
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err = conn.Ping(pctx)
			cancel()
			if e.pinged != nil {
				e.pinged(err)
			}
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		if n.Channel != Channel {
			continue
		}
		from, topic, ok := strings.Cut(n.Payload, " ")
		if !ok {
			continue
		}
		if from == e.id {
			continue // Publish woke the local subscribers already
		}
		e.wake(topic)
	}
}

// backoff is the wait before reconnection attempt n+1 (100 ms doubling to 5 s).
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

var _ flows.Events = (*Events)(nil)
