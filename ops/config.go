package ops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
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
	// LedgerKey is the server's checkpoint key, pinned at the first contact; Checkpoint
	// the last signed checkpoint this client saw of it (each next one must extend it).
	LedgerKey  string `yaml:"ledger_key,omitempty"`
	Checkpoint string `yaml:"checkpoint,omitempty"`
	// Witnesses are the witness keys this client trusts for the server; MinCosignatures
	// how many of them must vouch for the history it shows (0: no requirement).
	Witnesses       []string `yaml:"witnesses,omitempty"`
	MinCosignatures int      `yaml:"min_cosignatures,omitempty"`
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

// Project returns the selected project of an instance: "self" by default on the standalone
// instance; on a cloud instance, the one chosen at login or with 'project select' ("" if
// none).
func (c *Config) Project(instance string) string {
	if ic := c.Instances[instance]; ic != nil && ic.CurrentProject != "" {
		return ic.CurrentProject
	}
	if instance == "local" {
		return "self"
	}
	return ""
}

// AliasFor returns the alias logged in to url ("" if none); when several are, the first
// by name, so that the same config always gives the same answer.
func (c *Config) AliasFor(url string) string {
	var found []string
	for a, ic := range c.Instances {
		if ic != nil && ic.URL == url {
			found = append(found, a)
		}
	}
	if len(found) == 0 {
		return ""
	}
	slices.Sort(found)
	return found[0]
}

// AliasOf resolves an instance reference to a registered alias ("local" included): none
// is the selected instance, a URL the alias logged in to it.
func (c *Config) AliasOf(r InstanceRef) (string, error) {
	alias := r.Alias
	switch {
	case r.URL != "":
		if alias = c.AliasFor(r.URL); alias == "" {
			return "", Errorf(KindAuth, "swcli instance login "+r.URL+" --alias NAME --token-stdin", "not logged in to %s", r.URL)
		}
	case alias == "":
		alias = c.CurrentInstance
	}
	if c.Instances[alias] == nil {
		return "", Errorf(KindUsage, "'swcli instance list' shows the instances; 'swcli instance login' adds one", "unknown instance %q", alias)
	}
	return alias, nil
}

// OpenEndpoint opens the instance a project URI names: the standalone one (through
// openLocal), or a server the user logged in to. The project defaults to the instance's
// selected one.
func OpenEndpoint(cfg *Config, u ProjectURI, openLocal func() (*Instance, error)) (api.Endpoint, string, error) {
	if u.Instance.IsLocal(cfg.CurrentInstance) {
		in, err := openLocal()
		if err != nil {
			return nil, "", err
		}
		p := u.Project
		if p == "" {
			p = cfg.Project("local")
		}
		return LocalEndpoint{In: in}, p, nil
	}
	alias, err := cfg.AliasOf(u.Instance)
	if err != nil {
		return nil, "", err
	}
	ic := cfg.Instances[alias]
	if ic.URL == "" {
		return nil, "", Errorf(KindUsage, "'swcli instance list' shows the instances; 'swcli instance login' adds one", "unknown instance %q", alias)
	}
	p := u.Project
	if p == "" {
		p = cfg.Project(alias)
	}
	if p == "" {
		return nil, "", Errorf(KindUsage, "swcli project select cloud://"+alias+"/project/NAME ('swcli project list "+alias+"' shows them)",
			"no project selected on cloud://%s", alias)
	}
	return client.NewRemote(alias, ic.URL, ic.Token), p, nil
}
