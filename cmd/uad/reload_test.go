package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"uad/config"
)

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const reloadBase = `sip:
  listen: ["udp://127.0.0.1:5070"]
api:
  listen: "127.0.0.1:9000"
media:
  rtp_ports: "20000-20099"
  hold_tone: "440"
log:
  level: info
`

// A reload keeps what is bound at start and names it; the rest comes from
// the new file.
func TestKeepFixed(t *testing.T) {
	cur := parseConfig(t, reloadBase)
	next := parseConfig(t, strings.NewReplacer(
		"5070", "5071", "9000", "9001", "20099", "20199", `"440"`, `"350+440"`, "info", "debug",
	).Replace(reloadBase))

	got := keepFixed(next, cur)
	if want := []string{"sip.listen", "api.listen", "media.rtp_ports"}; !slices.Equal(got, want) {
		t.Errorf("keys kept = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(next.SIP, cur.SIP) || next.API != cur.API ||
		next.Media.RTPPorts != cur.Media.RTPPorts || next.Media.PortMax != cur.Media.PortMax {
		t.Errorf("the kept keys do not have the running values: %+v", next)
	}
	if next.Media.HoldTone != "350+440" || next.Log.Level != "debug" {
		t.Errorf("live keys: hold_tone %q, log.level %q; want the new file's", next.Media.HoldTone, next.Log.Level)
	}
	if again := keepFixed(next, cur); len(again) != 0 {
		t.Errorf("nothing changed, yet %v reported", again)
	}
}

// Every key a reload reports is a key of the config file.
func TestFixedKeysExist(t *testing.T) {
	for _, f := range fixedKeys {
		typ := reflect.TypeFor[config.Config]()
		for _, name := range strings.Split(f.key, ".") {
			field, ok := yamlField(typ, name)
			if !ok {
				t.Errorf("%s: no config key %q", f.key, name)
				break
			}
			typ = field.Type
		}
	}
}

func yamlField(typ reflect.Type, name string) (reflect.StructField, bool) {
	if typ.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range typ.NumField() {
		if f := typ.Field(i); strings.Split(f.Tag.Get("yaml"), ",")[0] == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
