package clock

import (
	"testing"
	"time"
)

func TestFakeRunsTimersInOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	c := NewFake(start)
	var got []string
	c.AfterFunc(3*time.Second, func() { got = append(got, "c") })
	c.AfterFunc(time.Second, func() {
		got = append(got, "a")
		c.AfterFunc(time.Second, func() { got = append(got, "b") }) // due at 2 s
	})
	stopped := c.AfterFunc(2500*time.Millisecond, func() { got = append(got, "never") })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	c.Advance(2 * time.Second)
	if want := "ab"; join(got) != want {
		t.Fatalf("after 2 s ran %q, want %q", join(got), want)
	}
	if now := c.Now(); !now.Equal(start.Add(2 * time.Second)) {
		t.Fatalf("Now = %v, want start+2s", now)
	}
	if d, ok := c.Next(); !ok || d != time.Second {
		t.Fatalf("Next = %v %v, want 1s true", d, ok)
	}
	c.Advance(time.Second)
	if want := "abc"; join(got) != want {
		t.Fatalf("after 3 s ran %q, want %q", join(got), want)
	}
	if c.Pending() != 0 {
		t.Fatalf("%d timers pending", c.Pending())
	}
}

func join(s []string) string {
	out := ""
	for _, x := range s {
		out += x
	}
	return out
}
