package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/bytedance/sonic"
)

// Configuration precedence, lowest to highest: built-in defaults, the -config file,
// TETHER_* environment variables, command-line flags. The config file is a JSON object
// whose keys are flag names ("addr", "heartbeat", "max-conns", ...), so every setting
// has one name everywhere; the environment variable of flag "max-conns" is
// TETHER_MAX_CONNS.

// envName returns the environment variable for a flag.
func envName(flagName string) string {
	return "TETHER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyLayers parses args into fs, then re-applies settings in precedence order. fs's
// flags must be bound to variables holding the defaults.
func applyLayers(fs *flag.FlagSet, args []string, configFlag *string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })

	if *configFlag != "" {
		if err := applyConfigFile(fs, *configFlag); err != nil {
			return err
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	for name, v := range explicit {
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("flag -%s: %w", name, err)
		}
	}
	return nil
}

// applyConfigFile sets flags from a JSON object of flag names to values.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read config file: %w", err)
	}
	var m map[string]any
	if err := sonic.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("cannot parse config file %s (want a JSON object of flag names to values): %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "config" || fs.Lookup(k) == nil {
			return fmt.Errorf("config file %s: unknown setting %q (keys are tetherd flag names; see tetherd -help)", path, k)
		}
		var s string
		switch v := m[k].(type) {
		case string:
			s = v
		case bool:
			s = fmt.Sprint(v)
		case float64:
			s = strings.TrimSuffix(fmt.Sprintf("%f", v), ".000000")
		default:
			return fmt.Errorf("config file %s: setting %q must be a string, number or boolean", path, k)
		}
		if err := fs.Set(k, s); err != nil {
			return fmt.Errorf("config file %s: setting %q: %w", path, k, err)
		}
	}
	return nil
}
