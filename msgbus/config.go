package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// defaultConfigFile is read from the working directory when --config is
// not given and it exists, as Mercury read mercury.conf.
const defaultConfigFile = "msgbus.toml"

// configSource loads the config file named by --config (or msgbus.toml in
// the working directory) for altsrc, which applies each key to the flag of
// the same name unless the flag was given or its environment variable set.
// Keys may use '_' or '-' (allow_origin, max-message-bytes). An unknown key
// or a value of the wrong type is an error that names the key.
func configSource(c *cli.Context) (altsrc.InputSourceContext, error) {
	path := c.String("config")
	if path == "" {
		if _, err := os.Stat(defaultConfigFile); err != nil {
			return &altsrc.MapInputSource{}, nil
		}
		path = defaultConfigFile
	}
	raw, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	known := map[string]cli.Flag{}
	for _, f := range c.App.Flags {
		if _, ok := f.(altsrc.FlagInputSourceExtension); ok {
			known[f.Names()[0]] = f
		}
	}
	values := map[any]any{}
	for k, v := range raw {
		key := strings.ReplaceAll(k, "_", "-")
		if known[key] == nil {
			names := slices.Sorted(func(yield func(string) bool) {
				for n := range known {
					if !yield(n) {
						return
					}
				}
			})
			return nil, fmt.Errorf("config file %s: unknown key %q (known keys: %s)", path, k, strings.Join(names, ", "))
		}
		if values[key], err = normalize(v); err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", path, k, err)
		}
		if v, ok := values[key].(string); ok && (key == "allow-origin" || key == "admin-allow" || key == "anonymous-publish" || key == "anonymous-subscribe") {
			values[key] = []any{v} // a string or a list
		}
		// Checked here, not only when applied: a key that a flag overrides
		// must still be right, or the file would break once the flag goes.
		if err := checkType(known[key], values[key]); err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", path, k, err)
		}
	}
	return altsrc.NewMapInputSource(path, values), nil
}

// checkType reports whether v suits flag f's kind.
func checkType(f cli.Flag, v any) error {
	switch f.(type) {
	case *altsrc.IntFlag:
		if _, ok := v.(int); !ok {
			return fmt.Errorf("want a whole number, not %v", v)
		}
	case *altsrc.StringFlag:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("want a string, not %v", v)
		}
	case *altsrc.DurationFlag:
		if s, ok := v.(string); !ok {
			return fmt.Errorf("want a duration such as \"5s\", not %v", v)
		} else if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("want a duration such as \"5s\": %w", err)
		}
	case *altsrc.StringSliceFlag:
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("want a string or a list of strings, not %v", v)
		}
		for _, e := range list {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("want a list of strings, not one holding %v", e)
			}
		}
	}
	return nil
}

// readConfig parses path as TOML, YAML or JSON, by its extension.
func readConfig(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var m map[string]any
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".toml":
		err = toml.Unmarshal(data, &m)
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &m)
	case ".json":
		err = json.Unmarshal(data, &m)
	default:
		return nil, fmt.Errorf("config file %s: unknown format %q: use .toml, .yaml, .yml or .json", path, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return m, nil
}

// normalize turns the numbers the parsers produce (int64 from TOML, float64
// from JSON) into the int altsrc expects, and lists into []any.
func normalize(v any) (any, error) {
	switch n := v.(type) {
	case int64:
		return int(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32*float64(1<<31) {
			return nil, fmt.Errorf("%v is not a whole number", n)
		}
		return int(n), nil
	case []any:
		return n, nil
	case []string:
		out := make([]any, len(n))
		for i, s := range n {
			out[i] = s
		}
		return out, nil
	case map[string]any:
		return nil, fmt.Errorf("want a value, not a table")
	}
	return v, nil
}
