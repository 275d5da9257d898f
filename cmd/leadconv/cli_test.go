package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/redisconn"
)

// runMain runs the command line in-process with the given environment
// variables and returns the exit code, stdout and stderr.
func runMain(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] },
		environ: func() []string {
			var kv []string
			for k, v := range vars {
				kv = append(kv, k+"="+v)
			}
			return kv
		}}
	code := Main(context.Background(), args, e)
	return code, stdout.String(), stderr.String()
}

func TestTopLevelUsage(t *testing.T) {
	code, _, stderr := runMain(t, nil)
	if code != exitUsage || !strings.Contains(stderr, "Commands:") {
		t.Fatalf("no args: code %d, stderr %q", code, stderr)
	}
	code, stdout, _ := runMain(t, nil, "--help")
	if code != exitOK {
		t.Fatalf("--help: code %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(stdout, "  "+c.name+" ") {
			t.Errorf("top-level help does not list %q:\n%s", c.name, stdout)
		}
	}
	code, _, stderr = runMain(t, nil, "frobnicate")
	if code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, stderr)
	}
}

// Every command documents itself and every flag it has.
func TestEveryCommandHasCompleteHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, nil, c.name, "--help")
			if code != exitOK || stderr != "" {
				t.Fatalf("code %d, stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stdout, "Usage: leadconv "+c.name) || c.synopsis == "" || strings.TrimSpace(c.help) == "" {
				t.Fatalf("help lacks usage line or description:\n%s", stdout)
			}
			fs := &flagSet{FlagSet: flag.NewFlagSet(c.name, flag.ContinueOnError), env: map[string][]string{}}
			c.setup(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(stdout, "-"+f.Name) {
					t.Errorf("help does not show flag -%s", f.Name)
				}
				if f.Usage == "" {
					t.Errorf("flag -%s has no description", f.Name)
				}
			})
			for name, vars := range fs.env {
				if !strings.Contains(stdout, "$"+vars[0]) {
					t.Errorf("help of -%s does not name $%s", name, vars[0])
				}
			}
			// "help <command>" is the same text.
			if _, again, _ := runMain(t, nil, "help", c.name); again != stdout {
				t.Errorf("help %s differs from %s --help", c.name, c.name)
			}
		})
	}
}

func TestBadFlagIsAUsageError(t *testing.T) {
	code, _, stderr := runMain(t, nil, "version", "--nope")
	if code != exitUsage || !strings.Contains(stderr, "flag provided but not defined: -nope") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

// Command line beats LEADCONV_*, which beats the fallback variable, which
// beats the default.
func TestFlagEnvPrecedence(t *testing.T) {
	parse := func(vars map[string]string, args ...string) (*serviceOptions, error) {
		fs := &flagSet{FlagSet: flag.NewFlagSet("t", flag.ContinueOnError), env: map[string][]string{}}
		var o serviceOptions
		o.register(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return &o, fs.applyEnv(func(k string) string { return vars[k] })
	}
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		args  []string
		redis string
		ns    string
	}{
		{"defaults", nil, nil, "redis://localhost:6379/0", "lc"},
		{"fallback REDIS_URL", map[string]string{"REDIS_URL": "redis://fallback:1"}, nil, "redis://fallback:1", "lc"},
		{"LEADCONV_ beats REDIS_URL", map[string]string{"REDIS_URL": "redis://fallback:1", "LEADCONV_REDIS_URL": "redis://env:2", "LEADCONV_NAMESPACE": "ns-env"}, nil, "redis://env:2", "ns-env"},
		{"flag beats env", map[string]string{"LEADCONV_REDIS_URL": "redis://env:2", "LEADCONV_NAMESPACE": "ns-env"}, []string{"--redis-url", "redis://flag:3", "--namespace=ns-flag"}, "redis://flag:3", "ns-flag"},
		{"empty variable is unset", map[string]string{"LEADCONV_NAMESPACE": ""}, nil, "redis://localhost:6379/0", "lc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(tc.vars, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if o.redis.URL != tc.redis || o.namespace != tc.ns {
				t.Fatalf("redis %q namespace %q, want %q %q", o.redis.URL, o.namespace, tc.redis, tc.ns)
			}
		})
	}
	_, err := parse(map[string]string{"LEADCONV_MAX_RECORD_BYTES": "lots"})
	if err == nil || !strings.Contains(err.Error(), "LEADCONV_MAX_RECORD_BYTES") {
		t.Fatalf("bad env value: error %v, want it to name the variable", err)
	}
}

// The default sizes are consistent: every input record the service accepts
// can be routed and dead-lettered whole within the producer's limit.
func TestDefaultSizesPassTheCheck(t *testing.T) {
	fs := &flagSet{FlagSet: flag.NewFlagSet("t", flag.ContinueOnError), env: map[string][]string{}}
	var o serviceOptions
	o.register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.check(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if o.maxRecordBytes+consumer.DeadLetterOverhead > o.maxProduceBytes {
		t.Fatalf("--max-record-bytes %d leaves no room for dead-letter headers in --max-produce-bytes %d", o.maxRecordBytes, o.maxProduceBytes)
	}
}

func TestServiceOptionsCheck(t *testing.T) {
	base := func() serviceOptions {
		return serviceOptions{brokers: "a:9092", namespace: "lc", maxRecordBytes: 1, maxProduceBytes: 1 << 20, contentMode: "binary",
			recordsTopic: "r", byTenantTopic: "r.by-tenant", cacheBytes: 1 << 20, lifecycleBytes: 1 << 20, commandsTopic: "c", dlqTopic: "d", fetch: fetchOptions{minBytes: 1, maxWait: 10 * time.Millisecond},
			redis: redisconn.Options{URL: "redis://localhost:6379/0"}}
	}
	if err := (func() error { o := base(); return o.check() })(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*serviceOptions)
		want string
	}{
		{"no brokers", func(o *serviceOptions) { o.brokers = " , " }, "--brokers"},
		{"namespace with tag", func(o *serviceOptions) { o.namespace = "a{b}" }, "--namespace"},
		{"content mode", func(o *serviceOptions) { o.contentMode = "batch" }, "allowed values are binary, structured"},
		{"cache bytes", func(o *serviceOptions) { o.cacheBytes = 1000 }, "--matcher-cache-bytes 1000: allowed values are at least 1048576"},
		{"lifecycle bytes", func(o *serviceOptions) { o.lifecycleBytes = 0 }, "--lifecycle-cache-bytes 0: allowed values are at least 1048576"},
		{"hop onto itself", func(o *serviceOptions) { o.byTenantTopic = "r" }, "--by-tenant-topic r: must differ from --records-topic"},
		{"empty topic", func(o *serviceOptions) { o.dlqTopic = "" }, "--dlq-topic"},
		{"fetch min bytes", func(o *serviceOptions) { o.fetch.minBytes = 0 }, "--fetch-min-bytes 0: allowed values are 1 to"},
		{"fetch wait below the client's floor", func(o *serviceOptions) { o.fetch.maxWait = 5 * time.Millisecond }, "--fetch-max-wait 5ms: allowed values are 10ms"},
		{"redis scheme", func(o *serviceOptions) { o.redis.URL = "redis+ring://h:1" }, "--redis-url: scheme \"redis+ring\""},
		{"sasl without mechanism", func(o *serviceOptions) { o.kafka.Username = "u" }, "need --sasl-mechanism"},
		{"record over the dead-letter limit", func(o *serviceOptions) { o.maxRecordBytes, o.maxProduceBytes = 1<<20, 1_000_012 },
			"--max-record-bytes 1048576 exceeds what --max-produce-bytes 1000012 lets the dead-letter topic take: at most 995916"},
		{"produce bytes", func(o *serviceOptions) { o.maxProduceBytes = 100 }, "--max-produce-bytes 100: allowed values are 65536 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.mod(&o)
			if err := o.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runMain(t, nil, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "leadconv ") || !strings.Contains(stdout, "go1.") {
		t.Fatalf("version: code %d, %q", code, stdout)
	}
	code, stdout, _ = runMain(t, nil, "version", "--json")
	var bi buildInfo
	if code != exitOK || json.Unmarshal([]byte(stdout), &bi) != nil || bi.Version == "" || bi.GoVersion == "" {
		t.Fatalf("version --json: code %d, %q", code, stdout)
	}
	if code, _, stderr := runMain(t, nil, "version", "extra"); code != exitUsage || !strings.Contains(stderr, "--help") {
		t.Fatalf("version extra: code %d, %q", code, stderr)
	}
}

func TestWriterNeedsPostgres(t *testing.T) {
	code, _, stderr := runMain(t, nil, "writer", "--brokers", "127.0.0.1:1")
	if code != exitUsage || !strings.Contains(stderr, "PostgreSQL") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

// flagsOf sets up the named command's flags with the environment vars and
// returns them.
func flagsOf(t *testing.T, name string, vars map[string]string) *flagSet {
	t.Helper()
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		fs := &flagSet{FlagSet: flag.NewFlagSet(c.name, flag.ContinueOnError), env: map[string][]string{}}
		c.setup(fs)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if err := fs.applyEnv(func(k string) string { return vars[k] }); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	t.Fatalf("no command %s", name)
	return nil
}

// One environment file serves run and writer: LEADCONV_GROUP is the
// pipeline's group only, the writer's is LEADCONV_WRITER_GROUP.
func TestGroupVariablesDoNotCollide(t *testing.T) {
	vars := map[string]string{"LEADCONV_GROUP": "pipeline-g"}
	if g := flagsOf(t, "run", vars).Lookup("group").Value.String(); g != "pipeline-g" {
		t.Errorf("run --group %q", g)
	}
	if g := flagsOf(t, "writer", vars).Lookup("group").Value.String(); g != "leadconv-writer" {
		t.Errorf("LEADCONV_GROUP set the writer's group: %q", g)
	}
	vars["LEADCONV_WRITER_GROUP"] = "writer-g"
	if g := flagsOf(t, "writer", vars).Lookup("group").Value.String(); g != "writer-g" {
		t.Errorf("LEADCONV_WRITER_GROUP: writer --group %q", g)
	}
	if g := flagsOf(t, "run", vars).Lookup("group").Value.String(); g != "pipeline-g" {
		t.Errorf("LEADCONV_WRITER_GROUP changed run --group: %q", g)
	}
}

// The writer's results topic as run reads it has a variable of its own:
// LEADCONV_RESULTS_TOPIC (run's request events, the writer's results) does
// not move it, and its own variable moves nothing of the writer's.
func TestCommandResultsTopicVariable(t *testing.T) {
	vars := map[string]string{"LEADCONV_RESULTS_TOPIC": "request-events"}
	if v := flagsOf(t, "run", vars).Lookup("command-results-topic").Value.String(); v != "leadconv.results" {
		t.Errorf("LEADCONV_RESULTS_TOPIC set run --command-results-topic: %q", v)
	}
	vars = map[string]string{"LEADCONV_COMMAND_RESULTS_TOPIC": "crm.results"}
	if v := flagsOf(t, "run", vars).Lookup("command-results-topic").Value.String(); v != "crm.results" {
		t.Errorf("LEADCONV_COMMAND_RESULTS_TOPIC: run --command-results-topic %q", v)
	}
	if v := flagsOf(t, "run", vars).Lookup("results-topic").Value.String(); v != "leadconv.results" {
		t.Errorf("LEADCONV_COMMAND_RESULTS_TOPIC set run --results-topic: %q", v)
	}
	if v := flagsOf(t, "writer", vars).Lookup("results-topic").Value.String(); v != "leadconv.results" {
		t.Errorf("LEADCONV_COMMAND_RESULTS_TOPIC set writer --results-topic: %q", v)
	}
}

// A misspelt LEADCONV_* variable is warned about, with the likely name;
// variables of other commands (one env file for several) are not.
func TestUnknownVariableWarned(t *testing.T) {
	vars := map[string]string{"LEADCONV_BROKER": "x:9092", "LEADCONV_POSTGRES": "postgres://x", "LEADCONV_TEST_POSTGRES_URL": "y", "LEADCONV_LOG_FORMAT": "json"}
	_, _, stderr := runMain(t, vars, "validate-config", "../../examples/leadconv.yaml")
	if !strings.Contains(stderr, `"variable":"LEADCONV_BROKER"`) || !strings.Contains(stderr, `"did_you_mean":"LEADCONV_BROKERS"`) {
		t.Errorf("no warning for LEADCONV_BROKER:\n%s", stderr)
	}
	for _, ok := range []string{"LEADCONV_POSTGRES", "LEADCONV_TEST_POSTGRES_URL", "LEADCONV_LOG_FORMAT"} {
		if strings.Contains(stderr, `"variable":"`+ok+`"`) {
			t.Errorf("warned about the known %s:\n%s", ok, stderr)
		}
	}
}

// An environment value that does not parse names the variable, the flag and
// the expected format, and does not repeat the value (it may be a secret).
func TestEnvParseErrorShowsFormat(t *testing.T) {
	for _, tc := range []struct{ cmd, variable, value, want string }{
		{"run", "LEADCONV_DRAIN_TIMEOUT", "ten-secs", "environment variable LEADCONV_DRAIN_TIMEOUT (--drain-timeout): invalid value, want a Go duration such as 500ms, 10s or 1m30s"},
		{"run", "LEADCONV_MAX_RECORD_BYTES", "1MB-secret", "environment variable LEADCONV_MAX_RECORD_BYTES (--max-record-bytes): invalid value, want an integer"},
	} {
		code, _, stderr := runMain(t, map[string]string{tc.variable: tc.value}, tc.cmd)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, tc.value) {
			t.Errorf("%s=%s: code %d, %s", tc.variable, tc.value, code, stderr)
		}
	}
}
