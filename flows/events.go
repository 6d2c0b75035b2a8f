package flows

import "sync"

// Events wakes waiters when something they watch changes: a sign-in is
// decided, a new request is pending for an account. A notification carries
// no data; the waiter re-reads the store. LocalEvents serves one process;
// several instances on one PostgreSQL will need an implementation built on
// LISTEN/NOTIFY (not written yet).
type Events interface {
	// Publish wakes every current subscriber of topic.
	Publish(topic string)
	// Subscribe returns a channel that receives after each Publish of topic
	// (notifications may coalesce) and a function that ends the subscription.
	Subscribe(topic string) (<-chan struct{}, func())
}

// Topics.
func signInTopic(id string) string         { return "signin/" + id }
func accountTopic(accountID string) string { return "account/" + accountID }

// AuditTopic is published after each audit event is appended.
const AuditTopic = "audit"

// LocalEvents is Events within one process.
type LocalEvents struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewLocalEvents returns an empty in-process event hub.
func NewLocalEvents() *LocalEvents {
	return &LocalEvents{subs: map[string]map[chan struct{}]struct{}{}}
}

// Publish wakes the subscribers of topic without blocking.
func (e *LocalEvents) Publish(topic string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs[topic] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Subscribe starts watching topic.
func (e *LocalEvents) Subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	if e.subs[topic] == nil {
		e.subs[topic] = map[chan struct{}]struct{}{}
	}
	e.subs[topic][ch] = struct{}{}
	e.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			e.mu.Lock()
			delete(e.subs[topic], ch)
			if len(e.subs[topic]) == 0 {
				delete(e.subs, topic)
			}
			e.mu.Unlock()
		})
	}
}

// PublishAll wakes every current subscriber of every topic (an event hub
// that may have lost a notification says so: waiters re-read the store).
func (e *LocalEvents) PublishAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, chs := range e.subs {
		for ch := range chs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
