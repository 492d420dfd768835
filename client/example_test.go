package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/tether-gw/tether/client"
)

// Example connects, joins a room, makes a request and prints pushes until the
// server ends the session with a terminal code. It needs a running gateway,
// so it is compiled but not run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "127.0.0.1:7000", client.Options{
		TokenFunc: func(ctx context.Context) (string, error) {
			return "alice", nil // fetch or refresh the token here
		},
		DeviceID: "laptop-1",
		OnStateChange: func(s client.State, err error) {
			log.Printf("tether: %v (%v)", s, err)
		},
	})
	var ce *client.CloseError
	if errors.As(err, &ce) && ce.Terminal() {
		log.Fatalf("login refused: %v", ce)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.Subscribe(ctx, "lobby"); err != nil {
		log.Fatal(err)
	}
	reply, err := c.Send(ctx, "chat.send", []byte(`{"room":"lobby","text":"hi"}`))
	var se *client.ServerError
	switch {
	case errors.As(err, &se):
		log.Printf("refused: %v", se.Code)
	case err != nil:
		log.Printf("no answer: %v", err)
	default:
		fmt.Printf("reply: %s\n", reply)
	}

	for p := range c.Pushes() { // ends when the client closes
		fmt.Printf("%s: %s\n", p.Channel, p.Payload)
	}
}
