package ops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Config is the client's configuration file (SWCLI_CONFIG, default
// ~/.config/swcli/config.yaml, mode 0600): the registered instances and what is selected.
type Config struct {
	CurrentInstance string                     `yaml:"current_instance"`
	Instances       map[string]*InstanceConfig `yaml:"instances"`

	path string
}

// InstanceConfig is one registered instance. "local" is always the standalone instance.
type InstanceConfig struct {
	URL            string `yaml:"url,omitempty"`
	Token          string `yaml:"token,omitempty"`
	User           string `yaml:"user,omitempty"`
	CurrentProject string `yaml:"current_project,omitempty"`
}

// DefaultConfigPath is $SWCLI_CONFIG or ~/.config/swcli/config.yaml.
func DefaultConfigPath() string {
	if p := os.Getenv("SWCLI_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "swcli", "config.yaml")
}

// LoadConfig reads the config at path; a missing file is an empty config.
func LoadConfig(path string) (*Config, error) {
	c := &Config{path: path}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err == nil {
		if err := yaml.Unmarshal(b, c); err != nil {
			return nil, Errorf(KindInvalid, "fix or delete the file", "config %s: %v", path, err)
		}
	}
	if c.Instances == nil {
		c.Instances = map[string]*InstanceConfig{}
	}
	if c.Instances["local"] == nil {
		c.Instances["local"] = &InstanceConfig{}
	}
	if c.CurrentInstance == "" {
		c.CurrentInstance = "local"
	}
	return c, nil
}

// Save writes the config atomically with mode 0600.
func (c *Config) Save() error {
	if c.path == "" {
		return errors.New("no config path")
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return os.Rename(tmp, c.path)
}

// Project returns the selected project of an instance ("self" by default).
func (c *Config) Project(instance string) string {
	if ic := c.Instances[instance]; ic != nil && ic.CurrentProject != "" {
		return ic.CurrentProject
	}
	return "self"
}
