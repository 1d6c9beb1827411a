package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
)

// readmeSubscriber is the README's nats.go subscriber example, between the
// markers, with two substitutions that TestReadmeSubscriber checks: the URL
// comes from the test's server, and lines go to out instead of stdout.
func readmeSubscriber(ctx context.Context, url string, out io.Writer) *nats.Conn {
	// README:begin
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cons, err := js.CreateOrUpdateConsumer(ctx, "MONITORD", jetstream.ConsumerConfig{
		Durable: "pager", FilterSubject: "monitord.failed.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		log.Fatal(err)
	}
	cons.Consume(func(m jetstream.Msg) {
		var ev struct {
			ID   string         // the event id: deduplicate on it
			Data map[string]any // service_sid, session_sid, interaction_sid, status, …
		}
		if json.Unmarshal(m.Data(), &ev) == nil {
			fmt.Fprintln(out, "failed:", ev.Data["interaction_sid"], ev.Data["status"], "event", ev.ID)
		}
		m.Ack()
	})
	// README:end
	return nc
}

// TestReadmeSubscriber keeps the README's subscriber example honest: the
// code there is the code above, and it receives a failed event as monitord
// renders it from a real JetStream stream.
func TestReadmeSubscriber(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "## Subscribe to events"); i >= 0 {
		section = section[i:]
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("README: no ```go block under \"## Subscribe to events\"")
	}
	inREADME := strings.NewReplacer(`nats.Connect("nats://127.0.0.1:4222")`, "nats.Connect(url)",
		"fmt.Println(", "fmt.Fprintln(out, ").Replace(m[1])

	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)// README:begin\n(.*?)\t// README:end`).FindSubmatch(src)
	if body == nil {
		t.Fatal("readme_test.go: markers not found")
	}
	inTest := regexp.MustCompile(`(?m)^\t`).ReplaceAllString(string(body[1]), "")
	if inREADME != inTest {
		t.Fatalf("the README's example and readmeSubscriber differ:\nREADME (substituted):\n%s\ntest:\n%s", inREADME, inTest)
	}

	url := testNATSServer(t, true)
	js := testStream(t, url)
	var out syncBuffer
	nc := readmeSubscriber(context.Background(), url, &out)
	defer nc.Close()

	tg := proxy.Target{Source: proxy.SourceParticipant, ServiceSID: sid("KS", 1), SessionSID: sid("KC", 2), ParticipantSID: sid("KP", 3)}
	now := time.Now()
	ev := event.Event{
		ID: event.InteractionID(sid("KI", 9), event.Failed, event.Outbound, "undelivered"), Kind: event.Failed,
		Target: tg, Time: now, InteractionSID: sid("KI", 9), Leg: event.Outbound, PrevStatus: "sent", Status: "undelivered",
	}
	msg, err := event.Render(ev, event.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, msg.Subject, msg.Data, jetstream.WithMsgID(msg.ID)); err != nil {
		t.Fatal(err)
	}
	waitForOutput(t, &out, 10*time.Second, fmt.Sprintf("failed: %s undelivered event %s", sid("KI", 9), msg.ID))
}
