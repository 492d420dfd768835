package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tether-gw/tether/server/control"
	"github.com/tether-gw/tether/server/webhook"
)

// Webhooks: online/offline events, and the uplinks of chosen routes, POSTed to an HTTP
// endpoint (package server/webhook, docs/WEBHOOKS.md). They ride on the control port,
// which is the gateway's handler, so they need it enabled.

// webhookSettings are the webhook flags.
type webhookSettings struct {
	webhookURL, webhookSecretFile, webhookRoutes string
	webhookEvents                                bool
	webhookQueue                                 int
	// observer is what webhookSender built for controlPort's Options.Observer (a
	// nil interface without webhooks).
	observer control.Observer
}

// webhookCloseTimeout bounds how long, after the drain, tetherd waits for the queued
// deliveries (the drained clients' offline events among them).
const webhookCloseTimeout = 10 * time.Second

func addWebhookFlags(fs *flag.FlagSet, s *webhookSettings) {
	fs.StringVar(&s.webhookURL, "webhook-url", "", "URL (http or https) that connection events, and the uplinks of -webhook-routes, are POSTed to as signed JSON (docs/WEBHOOKS.md). Needs the control port enabled, and a secret: -webhook-secret-file or TETHER_WEBHOOK_SECRET. Default none: no webhooks.")
	fs.StringVar(&s.webhookSecretFile, "webhook-secret-file", "", fmt.Sprintf("File holding the webhook signing secret (at least %d bytes; surrounding whitespace is trimmed). TETHER_WEBHOOK_SECRET may hold the secret itself instead.", webhook.MinSecretLen))
	fs.BoolVar(&s.webhookEvents, "webhook-events", true, "POST every online and offline event of this node's connections to -webhook-url (offline with its close code and reason).")
	fs.StringVar(&s.webhookRoutes, "webhook-routes", "", "Comma-separated routes (exact names) whose client SENDs are also POSTed to -webhook-url; a SEND on such a route that no service subscribed to gets an empty SEND_REPLY instead of NO_ROUTE.")
	fs.IntVar(&s.webhookQueue, "webhook-queue", 0, fmt.Sprintf("Deliveries that may wait for the receiver; past it the oldest is dropped (counted in tether_webhook_deliveries_total{result=\"dropped\"}). 0 keeps the library default, webhook.DefaultQueueSize = %d.", webhook.DefaultQueueSize))
}

// webhookSender builds the Sender from the settings and sets it as st.observer for
// controlPort; nil without -webhook-url.
func webhookSender(st *settings, logger *slog.Logger, getenv func(string) string) (*webhook.Sender, error) {
	w := &st.webhookSettings
	if w.webhookURL == "" {
		return nil, nil
	}
	secret := strings.TrimSpace(getenv("TETHER_WEBHOOK_SECRET"))
	if w.webhookSecretFile != "" {
		b, err := os.ReadFile(w.webhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read -webhook-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return nil, errors.New("-webhook-url needs a secret: -webhook-secret-file or TETHER_WEBHOOK_SECRET")
	}
	if w.webhookQueue < 0 {
		return nil, fmt.Errorf("-webhook-queue %d is negative", w.webhookQueue)
	}
	var routes []string
	for _, r := range strings.Split(w.webhookRoutes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			routes = append(routes, r)
		}
	}
	if !w.webhookEvents && len(routes) == 0 {
		return nil, errors.New("-webhook-url with -webhook-events=false and no -webhook-routes would post nothing")
	}
	s, err := webhook.New(webhook.Options{URL: w.webhookURL, Secret: secret, Events: w.webhookEvents, Routes: routes,
		QueueSize: w.webhookQueue, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("-webhook-url: %w", err)
	}
	w.observer = s
	logger.Info("webhooks on", "url", w.webhookURL, "events", w.webhookEvents, "routes", routes)
	return s, nil
}

// checkWebhooks refuses webhooks without the control port they are wired through.
func checkWebhooks(hooks *webhook.Sender, ctl *control.Port) error {
	if hooks != nil && ctl == nil {
		_ = hooks.Close(context.Background())
		return errors.New("-webhook-url needs the control port (-control with a secret: -control-secret-file or TETHER_CONTROL_SECRET)")
	}
	return nil
}

// closeWebhooks delivers what is queued, for webhookCloseTimeout at most.
func closeWebhooks(hooks *webhook.Sender, logger *slog.Logger) {
	if hooks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
	defer cancel()
	if err := hooks.Close(ctx); err != nil {
		logger.Warn("webhook deliveries left undelivered at exit (counted dropped)", "err", err)
	}
}
