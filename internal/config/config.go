// Package config loads stray's YAML configuration: strict decoding (unknown
// keys are errors), defaults before decoding, and one Validate that reports
// every problem at once with its field path and a hint.
//
// It never starts anything and never reads files other than the config and
// the knowledge files it names.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stray-mail/stray/detect"
)

// Config is the whole configuration file.
type Config struct {
	Detect Detect `yaml:"detect"`

	// dir is the directory of the config file; relative paths in it are
	// resolved against it.
	dir string
}

// Detect configures the detection engine's knowledge.
type Detect struct {
	// Protect lists the organisation's own domains or suffixes.
	Protect []string `yaml:"protect"`
	// Known lists known-correspondent files ("DOMAIN [COUNT]" lines).
	Known []string `yaml:"known"`
	// Builtin enables the built-in provider list (default true).
	Builtin *bool `yaml:"builtin"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	t := true
	return &Config{Detect: Detect{Builtin: &t}}
}

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly over the defaults. It does not validate.
func Parse(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if c.Detect.Builtin == nil {
		t := true
		c.Detect.Builtin = &t
	}
	return c, nil
}

// Problems is every validation error, each with its field path.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var p Problems
	for i, d := range c.Detect.Protect {
		if _, err := detect.NormalizeDomain(d); err != nil {
			p = append(p, fmt.Sprintf("detect.protect[%d]: %v (want a domain or suffix such as mil or example.com)", i, err))
		}
	}
	for i, k := range c.Detect.Known {
		if _, err := os.Stat(c.Path(k)); err != nil {
			p = append(p, fmt.Sprintf("detect.known[%d]: %v (want a file of \"DOMAIN [COUNT]\" lines)", i, err))
		}
	}
	if len(p) > 0 {
		return p
	}
	return nil
}

// Path resolves a path from the config file relative to its directory.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Knowledge loads the detection knowledge the config names, adding the
// extra protected domains and known files given on the command line.
func (c *Config) Knowledge(protect, knownFiles []string) (detect.Knowledge, error) {
	k := detect.Knowledge{Known: map[string]int{}, NoBuiltin: !*c.Detect.Builtin}
	k.Protected = append(append(k.Protected, c.Detect.Protect...), protect...)
	files := make([]string, 0, len(c.Detect.Known)+len(knownFiles))
	for _, f := range c.Detect.Known {
		files = append(files, c.Path(f))
	}
	files = append(files, knownFiles...)
	for _, path := range files {
		if err := readKnownFile(path, k.Known); err != nil {
			return k, err
		}
	}
	return k, nil
}

func readKnownFile(path string, into map[string]int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := detect.ReadKnown(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for d, n := range m {
		into[d] += n
	}
	return nil
}
