package ircconn

import (
	"reflect"
	"testing"
	"time"
)

func feed(t *testing.T, tr *Tracker, lines ...string) {
	t.Helper()
	for _, l := range lines {
		m, err := Parse(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		tr.Handle(m)
	}
}

func TestTracker(t *testing.T) {
	tr := NewTracker()
	feed(t, tr,
		":s 001 Me :Welcome",
		":s 005 Me CASEMAPPING=rfc1459 CHANMODES=beI,k,l,imnpst PREFIX=(qaohv)~&@%+ :are supported",
		":Me!u@h JOIN #Chan",
		":s 332 Me #chan :the topic",
		":s 333 Me #chan setter!x@y 1700000000",
		":s 353 Me = #chan :~&@Me @+op!o@h1 voiced [weird]!w@h3",
		":s 366 Me #chan :End of /NAMES list.",
		":s 324 Me #chan +ntkl secret 25",
	)
	ch, ok := tr.Channel("#CHAN")
	if !ok || !ch.Joined || !ch.Synced || ch.Name != "#Chan" {
		t.Fatalf("channel %+v", ch)
	}
	if ch.Topic != "the topic" || ch.TopicSetBy != "setter" || !ch.TopicTime.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("topic %+v", ch)
	}
	if !reflect.DeepEqual(ch.Modes, map[byte]string{'n': "", 't': "", 'k': "secret", 'l': "25"}) {
		t.Fatalf("modes %q", ch.Modes)
	}
	if me := ch.Members["me"]; me.Modes != "qao" || me.Nick != "Me" {
		t.Fatalf("me %+v", me)
	}
	if op := ch.Members["op"]; op.Modes != "ov" || op.Host != "h1" {
		t.Fatalf("op %+v", op)
	}
	if _, ok := ch.Members["{weird}"]; !ok {
		t.Fatal("rfc1459 folding of [weird]")
	}

	feed(t, tr,
		":op!o@h1 MODE #chan -v+h-k+b voiced op secret *!*@bad",
		":op!o@h1 MODE #chan +v-l+m voiced",
		":voiced!v@h2 NICK Loud",
		":newbie!n@h4 JOIN #chan",
		":[weird]!w@h3 PART #chan :bye",
		":op!o@h1 KICK #chan newbie :out",
		"@time=2024-03-04T05:06:07.000Z :op!o@h1 TOPIC #chan :new topic",
		":gone!g@h QUIT :quit", // not in the channel: no effect
	)
	ch, _ = tr.Channel("#chan")
	if !reflect.DeepEqual(ch.Nicks(), []string{"Loud", "Me", "op"}) {
		t.Fatalf("nicks %v", ch.Nicks())
	}
	if op := ch.Members["op"]; op.Modes != "ohv" {
		t.Fatalf("op modes %q", op.Modes)
	}
	if loud := ch.Members["loud"]; loud.Modes != "v" || loud.Nick != "Loud" {
		t.Fatalf("Loud %+v", loud)
	}
	if !reflect.DeepEqual(ch.Modes, map[byte]string{'n': "", 't': "", 'm': ""}) {
		t.Fatalf("modes %q", ch.Modes)
	}
	if ch.Topic != "new topic" || ch.TopicSetBy != "op" || !ch.TopicTime.Equal(time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Fatalf("topic %+v", ch)
	}

	// A reconnect: the state stays until the rejoin replaces it.
	before := ch
	feed(t, tr, ":s 001 Me :Welcome back", ":s 005 Me PREFIX=(ov)@+ :are supported")
	ch, _ = tr.Channel("#chan")
	if ch.Joined || ch.Synced || ch.Topic != "new topic" || len(ch.Members) != 3 {
		t.Fatalf("after reconnect %+v", ch)
	}
	feed(t, tr,
		":Me!u@h JOIN #chan",
		":s 353 Me = #chan :Me @op someone",
		":someone!s@h JOIN #chan", // a join during the names burst counts too
		":late!l@h JOIN #chan",
	)
	if ch, _ = tr.Channel("#chan"); ch.Synced || ch.Topic != "" {
		t.Fatalf("during the burst %+v", ch)
	}
	feed(t, tr, ":s 366 Me #chan :End")
	ch, _ = tr.Channel("#chan")
	if !ch.Synced || !reflect.DeepEqual(ch.Nicks(), []string{"Me", "late", "op", "someone"}) {
		t.Fatalf("resynced %+v", ch)
	}
	joined, left := DiffMembers(before, ch)
	if !reflect.DeepEqual(joined, []string{"late", "someone"}) || !reflect.DeepEqual(left, []string{"Loud"}) {
		t.Fatalf("diff joined %v left %v", joined, left)
	}

	// Our own part, kick and nick change.
	feed(t, tr, ":Me!u@h JOIN #other", ":s 366 Me #other :End", ":Me!u@h NICK Me2")
	if tr.Nick() != "Me2" || !reflect.DeepEqual(tr.Channels(), []string{"#chan", "#other"}) {
		t.Fatalf("nick %q channels %v", tr.Nick(), tr.Channels())
	}
	feed(t, tr, ":Me2!u@h PART #other", ":op!o@h1 KICK #chan Me2 :bye")
	if len(tr.Channels()) != 0 {
		t.Fatalf("channels %v", tr.Channels())
	}
}

func TestTrackerSkipsHistoryBatches(t *testing.T) {
	tr := NewTracker()
	feed(t, tr, ":s 001 me :hi", ":me!u@h JOIN #a", ":s 366 me #a :End")
	join, _ := Parse(":old!u@h JOIN #a")
	topic, _ := Parse(":old!u@h TOPIC #a :old topic")
	tr.HandleEvent(Event{Batch: &Batch{Type: "chathistory", Items: []Event{{Message: join}, {Message: topic}}}})
	if ch, _ := tr.Channel("#a"); len(ch.Members) != 1 || ch.Topic != "" {
		t.Fatalf("history changed the state: %+v", ch)
	}
	tr.HandleEvent(Event{Batch: &Batch{Type: "netjoin", Items: []Event{{Message: join}}}})
	if ch, _ := tr.Channel("#a"); len(ch.Members) != 2 {
		t.Fatalf("netjoin not applied: %+v", ch)
	}
}
