package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/notify/apns"
	"github.com/keystep/keystep/flows/notify/fcm"
	"github.com/keystep/keystep/flows/notify/push"
	"github.com/keystep/keystep/flows/notify/sms"
	"github.com/keystep/keystep/flows/notify/smtp"
)

// SendersConfig says how keystep reaches people and phones: email over
// SMTP, SMS through a gateway, pushes through APNs and FCM. A section left
// empty leaves its channel off. Secrets are read from files that only their
// owner may read, never from the configuration itself.
type SendersConfig struct {
	SMTP SMTPConfig `yaml:"smtp"`
	SMS  SMSConfig  `yaml:"sms"`
	APNs APNsConfig `yaml:"apns"`
	FCM  FCMConfig  `yaml:"fcm"`
}

// SMTPConfig is the email relay (flows/notify/smtp).
type SMTPConfig struct {
	Host         string `yaml:"host"`
	Port         int    `yaml:"port"`
	Security     string `yaml:"security"` // starttls (default), tls, none (loopback only)
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	From         string `yaml:"from"`
	CAFile       string `yaml:"ca_file"` // extra CA to trust for the relay's certificate
}

// SMSConfig is the SMS gateway (flows/notify/sms).
type SMSConfig struct {
	Provider            string `yaml:"provider"`              // twilio or webhook
	URL                 string `yaml:"url"`                   // twilio: API base URL (default Twilio's); webhook: the endpoint
	AccountSID          string `yaml:"account_sid"`           // twilio
	AuthTokenFile       string `yaml:"auth_token_file"`       // twilio
	From                string `yaml:"from"`                  // twilio: sending number
	MessagingServiceSID string `yaml:"messaging_service_sid"` // twilio, instead of from
	SecretFile          string `yaml:"secret_file"`           // webhook: HMAC secret
}

// APNsConfig is Apple Push Notification service (flows/notify/apns).
type APNsConfig struct {
	Endpoint string `yaml:"endpoint"` // default production
	KeyFile  string `yaml:"key_file"` // the .p8 key
	KeyID    string `yaml:"key_id"`
	TeamID   string `yaml:"team_id"`
	Topic    string `yaml:"topic"` // the app's bundle id
}

// FCMConfig is Firebase Cloud Messaging HTTP v1 (flows/notify/fcm).
type FCMConfig struct {
	Endpoint           string `yaml:"endpoint"`
	TokenURL           string `yaml:"token_url"`
	ServiceAccountFile string `yaml:"service_account_file"`
}

// sendersSchema is the file's shape for the senders.
func (c *Config) sendersSchema() schema {
	s := &c.Senders
	return schema{
		"smtp": schema{
			"host":          stringValue(&s.SMTP.Host),
			"port":          intValue(&s.SMTP.Port),
			"security":      stringValue(&s.SMTP.Security),
			"username":      stringValue(&s.SMTP.Username),
			"password_file": stringValue(&s.SMTP.PasswordFile),
			"from":          stringValue(&s.SMTP.From),
			"ca_file":       stringValue(&s.SMTP.CAFile),
		},
		"sms": schema{
			"provider":              stringValue(&s.SMS.Provider),
			"url":                   stringValue(&s.SMS.URL),
			"account_sid":           stringValue(&s.SMS.AccountSID),
			"auth_token_file":       stringValue(&s.SMS.AuthTokenFile),
			"from":                  stringValue(&s.SMS.From),
			"messaging_service_sid": stringValue(&s.SMS.MessagingServiceSID),
			"secret_file":           stringValue(&s.SMS.SecretFile),
		},
		"apns": schema{
			"endpoint": stringValue(&s.APNs.Endpoint),
			"key_file": stringValue(&s.APNs.KeyFile),
			"key_id":   stringValue(&s.APNs.KeyID),
			"team_id":  stringValue(&s.APNs.TeamID),
			"topic":    stringValue(&s.APNs.Topic),
		},
		"fcm": schema{
			"endpoint":             stringValue(&s.FCM.Endpoint),
			"token_url":            stringValue(&s.FCM.TokenURL),
			"service_account_file": stringValue(&s.FCM.ServiceAccountFile),
		},
	}
}

// buildSenders makes the senders the configuration asks for. Every error
// names the key at fault.
func (c *Config) buildSenders() (Senders, flows.PushSender, error) {
	var out Senders
	s := c.Senders
	if s.SMTP.Host != "" {
		cfg := smtp.Config{Host: s.SMTP.Host, Port: s.SMTP.Port, Security: s.SMTP.Security, Username: s.SMTP.Username, From: s.SMTP.From}
		if s.SMTP.PasswordFile != "" {
			pw, err := readSecretFile(s.SMTP.PasswordFile)
			if err != nil {
				return Senders{}, nil, fmt.Errorf("config: smtp.password_file: %w", err)
			}
			cfg.Password = string(pw)
		}
		if s.SMTP.CAFile != "" {
			pem, err := os.ReadFile(s.SMTP.CAFile)
			if err != nil {
				return Senders{}, nil, fmt.Errorf("config: smtp.ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return Senders{}, nil, fmt.Errorf("config: smtp.ca_file: %s holds no PEM certificate", s.SMTP.CAFile)
			}
			cfg.TLSConfig = &tls.Config{RootCAs: pool}
		}
		sender, err := smtp.New(cfg)
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: smtp: %w", err)
		}
		out.Email = sender
	}
	switch s.SMS.Provider {
	case "":
	case "twilio":
		token, err := readSecretFile(s.SMS.AuthTokenFile)
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: sms.auth_token_file: %w", err)
		}
		sender, err := sms.NewTwilio(sms.TwilioConfig{BaseURL: s.SMS.URL, AccountSID: s.SMS.AccountSID, AuthToken: string(token), From: s.SMS.From, MessagingServiceSID: s.SMS.MessagingServiceSID})
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: sms: %w", err)
		}
		out.SMS = sender
	case "webhook":
		secret, err := readSecretFile(s.SMS.SecretFile)
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: sms.secret_file: %w", err)
		}
		sender, err := sms.NewWebhook(sms.WebhookConfig{URL: s.SMS.URL, Secret: secret})
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: sms: %w", err)
		}
		out.SMS = sender
	default:
		return Senders{}, nil, fmt.Errorf("config: sms.provider must be twilio or webhook, not %q", s.SMS.Provider)
	}

	var router push.Router
	if s.APNs.KeyFile != "" {
		key, err := readSecretFile(s.APNs.KeyFile)
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: apns.key_file: %w", err)
		}
		sender, err := apns.New(apns.Config{Endpoint: s.APNs.Endpoint, KeyPEM: key, KeyID: s.APNs.KeyID, TeamID: s.APNs.TeamID, Topic: s.APNs.Topic})
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: apns: %w", err)
		}
		router.APNs = sender
	}
	if s.FCM.ServiceAccountFile != "" {
		sa, err := readSecretFile(s.FCM.ServiceAccountFile)
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: fcm.service_account_file: %w", err)
		}
		sender, err := fcm.New(fcm.Config{Endpoint: s.FCM.Endpoint, TokenURL: s.FCM.TokenURL, ServiceAccountJSON: sa})
		if err != nil {
			return Senders{}, nil, fmt.Errorf("config: fcm: %w", err)
		}
		router.FCM = sender
	}
	if router.APNs == nil && router.FCM == nil {
		return out, nil, nil
	}
	return out, router, nil
}
