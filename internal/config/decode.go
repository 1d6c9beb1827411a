package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decoder writes a koanf map onto a Config strictly. koanf's own Unmarshal
// (mapstructure) ignores unknown keys and words type errors by Go type; this
// one names the YAML key of every problem and keeps going, so that one run
// reports them all, and it never echoes the value given for a Secret.
type decoder struct {
	p *Problems
	// protos give the starting value of a new list item (its defaults).
	protos map[reflect.Type]func() reflect.Value
	// label turns a key path into what an error names (an environment
	// variable, a flag); nil means the key path itself.
	label func(path string) string
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
)

func (d *decoder) errorf(path, format string, args ...any) {
	name := path
	if d.label != nil {
		name = d.label(path)
	}
	d.p.addf("%s: %s", name, fmt.Sprintf(format, args...))
}

// decode sets out from in. A nil in (an empty YAML value) keeps the default.
func (d *decoder) decode(path string, in any, out reflect.Value) {
	if in == nil {
		return
	}
	t := out.Type()
	secret := t == secretType
	switch {
	case t == durationType:
		switch v := in.(type) {
		case time.Duration:
			out.SetInt(int64(v))
		case string:
			dur, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				d.errorf(path, "%q is not a duration such as \"30s\" or \"1h30m\"", v)
				return
			}
			out.SetInt(int64(dur))
		default:
			d.errorf(path, "expected a duration such as \"30s\", got %s", describe(in, false))
		}
	case t.Kind() == reflect.String:
		s, ok := in.(string)
		if !ok {
			d.errorf(path, "expected a string, got %s", describe(in, secret))
			return
		}
		out.SetString(s)
	case t.Kind() == reflect.Bool:
		switch v := in.(type) {
		case bool:
			out.SetBool(v)
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				d.errorf(path, "expected true or false, got %q", v)
				return
			}
			out.SetBool(b)
		default:
			d.errorf(path, "expected true or false, got %s", describe(in, false))
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		n, ok := toInt(in)
		if !ok || out.OverflowInt(n) {
			d.errorf(path, "expected an integer, got %s", describe(in, false))
			return
		}
		out.SetInt(n)
	case t.Kind() == reflect.Float64:
		f, ok := toFloat(in)
		if !ok {
			d.errorf(path, "expected a number, got %s", describe(in, false))
			return
		}
		out.SetFloat(f)
	case t.Kind() == reflect.Slice:
		d.decodeSlice(path, in, out)
	case t.Kind() == reflect.Map:
		m, ok := in.(map[string]any)
		if !ok {
			d.errorf(path, "expected a map of strings, got %s", describe(in, false))
			return
		}
		nm := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			ev := reflect.New(t.Elem()).Elem()
			d.decode(path+"."+k, m[k], ev)
			nm.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		out.Set(nm)
	case t.Kind() == reflect.Struct:
		m, ok := in.(map[string]any)
		if !ok {
			d.errorf(path, "expected a map of keys, got %s", describe(in, false))
			return
		}
		for _, k := range sortedKeys(m) {
			f, ok := fieldByKey(t, k)
			if !ok {
				d.errorf(join(path, k), "unknown key")
				continue
			}
			d.decode(join(path, k), m[k], out.FieldByIndex(f.Index))
		}
	default:
		// Only reachable if a field of an unsupported type is added.
		panic(fmt.Sprintf("config: cannot decode into %s", t))
	}
}

// decodeSlice replaces out with the list in. From the environment or a flag
// a list of strings is one comma-separated string.
func (d *decoder) decodeSlice(path string, in any, out reflect.Value) {
	t := out.Type()
	var items []any
	switch v := in.(type) {
	case []any:
		items = v
	case []string:
		for _, s := range v {
			items = append(items, s)
		}
	case string:
		// Lists of strings or of integers (reasons.metric_codes) read
		// "a,b" from the environment or a flag.
		if k := t.Elem().Kind(); k != reflect.String && (k < reflect.Int || k > reflect.Int64) {
			d.errorf(path, "expected a list, got %s", describe(in, false))
			return
		}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	default:
		d.errorf(path, "expected a list, got %s", describe(in, false))
		return
	}
	ns := reflect.MakeSlice(t, len(items), len(items))
	for i, item := range items {
		ev := ns.Index(i)
		if proto, ok := d.protos[t.Elem()]; ok {
			ev.Set(proto())
		}
		d.decode(fmt.Sprintf("%s[%d]", path, i), item, ev)
	}
	out.Set(ns)
}

// fieldByKey finds the struct field whose koanf tag is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("koanf") == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// knownKey reports whether a dotted key path names a field of Config that a
// flag can set (lists of items cannot be set by one flag).
func knownKey(path string) bool {
	t := reflect.TypeFor[Config]()
	for _, k := range strings.Split(path, ".") {
		if t.Kind() != reflect.Struct {
			return false
		}
		f, ok := fieldByKey(t, k)
		if !ok {
			return false
		}
		t = f.Type
	}
	return t.Kind() != reflect.Struct && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct)
}

func toInt(in any) (int64, bool) {
	switch v := in.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<62 {
			return 0, false
		}
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(strings.ReplaceAll(v, "_", "")), 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toFloat(in any) (float64, bool) {
	switch v := in.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	return 0, false
}

// describe words a wrong value for an error; a secret's value is never shown.
func describe(in any, secret bool) string {
	switch v := in.(type) {
	case string:
		if secret {
			return "a string"
		}
		return strconv.Quote(v)
	case bool:
		if secret {
			return "a boolean"
		}
		return strconv.FormatBool(v)
	case int, int64, uint64, float64:
		if secret {
			return "a number"
		}
		return fmt.Sprint(v)
	case []any, []string:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("a %T", in)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
