package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// decoder walks the YAML syntax tree onto a Config through the structs'
// yaml tags, so that every value keeps its line for the messages about it,
// and so that every problem is collected instead of stopping at the first.
type decoder struct {
	file    string
	baseDir string // where relative paths are taken from; "" = as written
	errs    Errors
	lines   map[string]int      // key path ("sip.listen[0]") -> line of its value
	failed  map[string]bool     // key paths already reported; validation skips them
	anchors map[string]ast.Node // YAML anchor name -> the node it names
	merges  int                 // mappings merge keys have brought in so far
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:    file,
		lines:   map[string]int{},
		failed:  map[string]bool{},
		anchors: map[string]ast.Node{},
	}
}

// Limits that keep hostile input cheap: anchors make a small file a deep
// tree, and merge keys can refer to themselves.
const (
	maxAliasChain = 16
	maxMergeDepth = 8
	maxMerges     = 1000
)

var durationType = reflect.TypeFor[Duration]()

// errorf reports a problem at line that is not about one key's value.
func (d *decoder) errorf(line int, format string, args ...any) {
	d.errs = append(d.errs, Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// fail reports that the value at path is wrong, at the line of that value.
func (d *decoder) fail(path, format string, args ...any) {
	d.failed[path] = true
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errorf(d.line(path), "%s", msg)
}

// decodeRoot decodes the document's top level onto cfg.
func (d *decoder) decodeRoot(body ast.Node, cfg *Config) {
	if _, ok := d.resolve("", body).(*ast.MappingNode); !ok {
		d.errorf(lineOf(body), "the top level must be a mapping of sections (sip, api, media, calls, accounts, trace, log)")
		return
	}
	d.decodeValue("", body, reflect.ValueOf(cfg).Elem())
}

// line returns the line of the value at path, or of the closest enclosing
// value the file has, or 0.
func (d *decoder) line(path string) int {
	for path != "" {
		if line, ok := d.lines[path]; ok {
			return line
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// result returns the problems found, in line order, each once (an alias
// used twice can repeat one).
func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	seen := map[Error]bool{}
	var errs Errors
	for _, e := range d.errs {
		if !seen[e] {
			seen[e] = true
			errs = append(errs, e)
		}
	}
	slices.SortStableFunc(errs, func(a, b Error) int { return a.Line - b.Line })
	return &errs
}

// decodeFile decodes the YAML document in data onto cfg.
func (d *decoder) decodeFile(data []byte, cfg *Config) {
	// Duplicate keys are reported by decodeStruct, together with the rest,
	// rather than by the parser as the only error.
	file, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		d.syntaxError(err)
		return
	}
	var body ast.Node
	for _, doc := range file.Docs {
		switch {
		case doc.Body == nil:
		case body == nil:
			body = doc.Body
		default:
			d.errorf(lineOf(doc.Body), "only one YAML document is allowed")
		}
	}
	if body == nil {
		return // an empty file: the defaults as they are
	}
	ast.Walk(anchorCollector(d.anchors), body)
	d.decodeRoot(body, cfg)
}

// syntaxError reports a YAML parse error at its line.
func (d *decoder) syntaxError(err error) {
	var yamlErr yaml.Error
	if errors.As(err, &yamlErr) {
		line := 0
		if tk := yamlErr.GetToken(); tk != nil && tk.Position != nil {
			line = tk.Position.Line
		}
		d.errorf(line, "YAML syntax error: %s", yamlErr.GetMessage())
		return
	}
	d.errorf(0, "YAML syntax error: %v", err)
}

// anchorCollector records every anchor in the tree, so aliases resolve.
type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(node ast.Node) ast.Visitor {
	if anchor, ok := node.(*ast.AnchorNode); ok && anchor.Name != nil && anchor.Name.GetToken() != nil {
		a[anchor.Name.GetToken().Value] = anchor.Value
	}
	return a
}

// lineOf returns the line node starts on, or 0.
func lineOf(node ast.Node) int {
	if node == nil {
		return 0
	}
	if tk := node.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// resolve follows anchors, aliases and tags to the node that holds the
// value; tags are ignored, since the schema says what each value is. It
// returns nil for an empty value (and for a bad alias, which it reports).
func (d *decoder) resolve(path string, node ast.Node) ast.Node {
	for range maxAliasChain {
		switch n := node.(type) {
		case *ast.AnchorNode:
			node = n.Value
		case *ast.TagNode:
			node = n.Value
		case *ast.AliasNode:
			if n.Value == nil || n.Value.GetToken() == nil {
				d.fail(path, "alias without a name")
				return nil
			}
			name := n.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.fail(path, "unknown alias *%s", name)
				return nil
			}
			node = target
		case *ast.NullNode:
			return nil
		default:
			return node
		}
	}
	d.fail(path, "aliases nested more than %d deep", maxAliasChain)
	return nil
}

// decodeValue sets v, found at path, from node.
func (d *decoder) decodeValue(path string, node ast.Node, v reflect.Value) {
	if path != "" {
		d.lines[path] = lineOf(node) // the alias, not its target, is what the reader wrote here
	}
	node = d.resolve(path, node)
	if d.failed[path] {
		return
	}
	if node == nil {
		// An empty value leaves a section as it was and empties anything
		// else, just as writing "" or [] would.
		if v.Kind() != reflect.Struct {
			v.SetZero()
		}
		return
	}
	switch {
	case v.Type() == durationType:
		d.decodeDuration(path, node, v)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(path, node, v)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(path, node, v)
	case v.Kind() == reflect.String:
		if s, ok := d.decodeString(path, node); ok {
			v.SetString(s)
		}
	case v.Kind() == reflect.Bool:
		b, ok := node.(*ast.BoolNode)
		if !ok {
			d.fail(path, "want true or false")
			return
		}
		v.SetBool(b.Value)
	case v.Kind() == reflect.Int:
		n, ok := intValue(node)
		if !ok {
			d.fail(path, "want a whole number")
			return
		}
		v.SetInt(n)
	default:
		panic("config: no decoding for " + v.Type().String())
	}
}

// decodeString returns the text of a scalar. Numbers and booleans are
// taken as written, so that `tone: 440` means "440".
func (d *decoder) decodeString(path string, node ast.Node) (string, bool) {
	var s string
	switch n := node.(type) {
	case *ast.StringNode:
		s = n.Value
	case *ast.LiteralNode:
		if n.Value != nil {
			s = n.Value.Value
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		s = n.GetToken().Value
	default:
		d.fail(path, "want a string")
		return "", false
	}
	// Most strings end up in SIP headers, where these would start a new
	// header or end the message; none has a use anywhere else either.
	if strings.ContainsAny(s, "\r\n\x00") {
		d.fail(path, "contains a CR, LF or NUL character")
	}
	return s, true
}

// intValue returns the value of an integer node that fits an int.
func intValue(node ast.Node) (int64, bool) {
	n, ok := node.(*ast.IntegerNode)
	if !ok {
		return 0, false
	}
	switch v := n.Value.(type) {
	case int64:
		return v, v >= math.MinInt && v <= math.MaxInt
	case uint64:
		return int64(v), v <= math.MaxInt
	}
	return 0, false
}

// decodeDuration reads a Go duration string or an integer of seconds.
func (d *decoder) decodeDuration(path string, node ast.Node, v reflect.Value) {
	if secs, ok := intValue(node); ok {
		if secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
			d.fail(path, "%d seconds is too long", secs)
			return
		}
		v.SetInt(secs * int64(time.Second))
		return
	}
	s, ok := node.(*ast.StringNode)
	if !ok {
		d.fail(path, "want a duration such as 30s, 500ms or 0s")
		return
	}
	dur, err := time.ParseDuration(s.Value)
	if err != nil {
		d.fail(path, "%q: not a duration (write e.g. 30s, 500ms or 0s)", s.Value)
		return
	}
	v.SetInt(int64(dur))
}

// decodeSlice replaces the list v with the sequence in node. A bad element
// keeps its place (as a zero value) so that indexes match the file.
func (d *decoder) decodeSlice(path string, node ast.Node, v reflect.Value) {
	elemType := v.Type().Elem()
	seq, ok := node.(*ast.SequenceNode)
	if !ok {
		if elemType.Kind() == reflect.String {
			d.fail(path, "want a list of strings")
		} else {
			d.fail(path, "want a list of mappings")
		}
		return
	}
	if len(seq.Values) == 0 {
		v.SetZero() // [] and a missing list are both nil
		return
	}
	out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	for i, elem := range seq.Values {
		item := out.Index(i)
		if a, ok := item.Addr().Interface().(*Account); ok {
			a.setDefaults()
		}
		d.decodeValue(fmt.Sprintf("%s[%d]", path, i), elem, item)
	}
	v.Set(out)
}

// setDefaults gives an account from the file the defaults of its keys.
func (a *Account) setDefaults() {
	a.Expires = DefaultAccountExpires
	a.Transport = DefaultAccountTransport
}

// mapEntry is one key: value of a mapping.
type mapEntry struct {
	key   string
	line  int // of the key
	value ast.Node
}

// decodeStruct sets the fields of v from the mapping in node, by yaml tag.
func (d *decoder) decodeStruct(path string, node ast.Node, v reflect.Value) {
	mapping, ok := node.(*ast.MappingNode)
	if !ok {
		d.fail(path, "want a mapping")
		return
	}
	fields := fieldsByKey(v.Type())
	for _, e := range d.mapEntries(path, mapping, 0) {
		i, ok := fields[e.key]
		if !ok {
			d.errorf(e.line, "unknown key %q %s", e.key, where(path))
			continue
		}
		d.decodeValue(joinPath(path, e.key), e.value, v.Field(i))
	}
}

// mapEntries lists the entries of mapping, with those a merge key ("<<")
// brings in first and the mapping's own ones overriding them, as YAML
// defines. Repeated keys are reported and dropped.
func (d *decoder) mapEntries(path string, mapping *ast.MappingNode, depth int) []mapEntry {
	if depth > maxMergeDepth {
		d.errorf(lineOf(mapping), "merge keys (<<) nested more than %d deep %s", maxMergeDepth, where(path))
		return nil
	}
	var merged, own []mapEntry
	firstLine := map[string]int{}
	for _, kv := range mapping.Values {
		if _, ok := kv.Key.(*ast.MergeKeyNode); ok {
			merged = overlay(merged, d.mergedEntries(path, kv, depth))
			continue
		}
		key, ok := keyText(kv.Key)
		line := lineOf(kv.Key)
		if !ok {
			d.errorf(line, "keys must be plain strings %s", where(path))
			continue
		}
		if first, dup := firstLine[key]; dup {
			d.errorf(line, "duplicate key %q %s (first on line %d)", key, where(path), first)
			continue
		}
		firstLine[key] = line
		own = append(own, mapEntry{key: key, line: line, value: kv.Value})
	}
	return overlay(merged, own)
}

// mergedEntries returns the entries a merge key brings in: those of one
// mapping, or of a list of mappings where earlier ones win.
func (d *decoder) mergedEntries(path string, kv *ast.MappingValueNode, depth int) []mapEntry {
	var sources []ast.Node
	switch n := d.resolve(path, kv.Value).(type) {
	case *ast.MappingNode:
		sources = []ast.Node{n}
	case *ast.SequenceNode:
		for _, elem := range slices.Backward(n.Values) {
			sources = append(sources, d.resolve(path, elem))
		}
	default:
		sources = []ast.Node{nil}
	}
	var out []mapEntry
	for _, src := range sources {
		if d.merges++; d.merges > maxMerges {
			if d.merges == maxMerges+1 { // once is enough
				d.errorf(lineOf(kv.Key), "merge keys (<<) bring in more than %d mappings", maxMerges)
			}
			return nil
		}
		mapping, ok := src.(*ast.MappingNode)
		if !ok {
			d.errorf(lineOf(kv.Key), "a merge key (<<) needs a mapping or a list of mappings %s", where(path))
			return nil
		}
		out = overlay(out, d.mapEntries(path, mapping, depth+1))
	}
	return out
}

// overlay returns base with the entries of top added, replacing those of
// base with the same key.
func overlay(base, top []mapEntry) []mapEntry {
	if len(base) == 0 {
		return top
	}
	inTop := make(map[string]bool, len(top))
	for _, e := range top {
		inTop[e.key] = true
	}
	out := slices.DeleteFunc(base, func(e mapEntry) bool { return inTop[e.key] })
	return append(out, top...)
}

// keyText returns the text of a scalar mapping key.
func keyText(key ast.MapKeyNode) (string, bool) {
	switch n := key.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// fieldsByKey maps the yaml keys of struct type t to field indexes.
func fieldsByKey(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key != "" && key != "-" {
			fields[key] = i
		}
	}
	return fields
}

// joinPath appends key to the key path path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// where says which mapping path is, for messages.
func where(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + path
}
