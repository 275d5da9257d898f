package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/leadconv/leadconv/internal/ops"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// env is the process environment a command runs in; tests substitute it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// environ lists the variables as KEY=value (os.Environ), to find
	// misspelt LEADCONV_* names; nil skips that check.
	environ func() []string
}

// command is one subcommand. setup defines the flags on fs and returns the
// function that runs the command with the remaining arguments.
type command struct {
	name     string
	synopsis string // one line for the command list
	usage    string // arguments after the command name
	help     string // paragraphs after the usage line
	setup    func(fs *flagSet) func(ctx context.Context, e *env, args []string) error
}

func commands() []*command {
	return []*command{
		demoCommand(), runCommand(), replayCommand(), simulateCommand(), validateConfigCommand(), genCommand(), evalCommand(), writerCommand(), benchCommand(), versionCommand(),
	}
}

// usageError is a command-line mistake: exit code 2 and a pointer to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Main runs the leadconv command line and returns the exit code.
func Main(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		printTopUsage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			return Main(ctx, []string{args[1], "--help"}, e)
		}
		printTopUsage(e.stdout)
		return exitOK
	case "-v", "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.exec(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "leadconv: unknown command %q\n\n", name)
	printTopUsage(e.stderr)
	return exitUsage
}

func printTopUsage(w io.Writer) {
	fmt.Fprint(w, `leadconv converts and merges duplicate CRM leads in real time: it reads
record events from Kafka, keeps duplicate clusters in Redis and publishes
conversion and merge commands as CloudEvents.

Usage:
  leadconv <command> [flags] [arguments]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.synopsis)
	}
	_ = tw.Flush()
	fmt.Fprint(w, `
Run "leadconv <command> --help" for a command's flags. Service flags can also
be set with LEADCONV_* environment variables (shown in each command's help);
a flag given on the command line wins over the environment.
`)
}

func (c *command) exec(ctx context.Context, e *env, args []string) int {
	fs := &flagSet{FlagSet: flag.NewFlagSet("leadconv "+c.name, flag.ContinueOnError), env: map[string][]string{}}
	fs.SetOutput(e.stderr)
	run := c.setup(fs)
	fs.annotateEnv()
	printUsage := func(out io.Writer) {
		fmt.Fprintf(out, "Usage: leadconv %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.help))
		if hasFlags(fs.FlagSet) {
			fmt.Fprint(out, "\nFlags:\n")
			fs.SetOutput(out)
			fs.PrintDefaults()
			fs.SetOutput(e.stderr)
		}
	}
	// The flag package prints parse errors itself; the full usage goes to
	// stdout on --help only, so that a typo gives a short message.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "Run \"leadconv %s --help\" for usage.\n", c.name)
		return exitUsage
	}
	warnUnknownEnv(e, fs)
	if err := fs.applyEnv(e.getenv); err != nil {
		fmt.Fprintf(e.stderr, "leadconv %s: %v\n", c.name, err)
		return exitUsage
	}
	err := run(ctx, e, fs.Args())
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "leadconv %s: %v\nRun \"leadconv %s --help\" for usage.\n", c.name, err, c.name)
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "leadconv %s: %v\n", c.name, err)
		return exitError
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// flagSet is a flag.FlagSet whose chosen flags can also come from
// environment variables. Precedence: command line, then the variables in the
// order given, then the flag's default.
type flagSet struct {
	*flag.FlagSet
	env map[string][]string // flag name -> environment variables
}

// fromEnv lets the named flag be set by LEADCONV_<NAME> (upper case, dashes
// as underscores) and then by each of also.
func (fs *flagSet) fromEnv(name string, also ...string) {
	fs.env[name] = append([]string{envName(name)}, also...)
}

// fromEnvAs lets the named flag be set by the variables given instead of
// LEADCONV_<NAME>: for a setting whose meaning differs between commands
// (the writer's --group is not the pipeline's), so that one environment file
// can serve both.
func (fs *flagSet) fromEnvAs(name string, vars ...string) {
	fs.env[name] = vars
}

func envName(flagName string) string {
	return "LEADCONV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// annotateEnv appends the variable names to the flags' help text.
func (fs *flagSet) annotateEnv() {
	for name, vars := range fs.env {
		if f := fs.Lookup(name); f != nil {
			f.Usage += " [$" + strings.Join(vars, ", $") + "]"
		}
	}
}

func (fs *flagSet) applyEnv(getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	names := make([]string, 0, len(fs.env))
	for n := range fs.env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if set[name] {
			continue
		}
		for _, v := range fs.env[name] {
			val, ok := lookup(getenv, v)
			if !ok {
				continue
			}
			if err := fs.Set(name, val); err != nil {
				// The value is not repeated: it may be a secret.
				return fmt.Errorf("environment variable %s (--%s): invalid value, want %s", v, name, expectedFormat(fs.Lookup(name)))
			}
			break
		}
	}
	return nil
}

// expectedFormat describes the values a flag accepts.
func expectedFormat(f *flag.Flag) string {
	if ef, ok := f.Value.(interface{ Format() string }); ok {
		return ef.Format()
	}
	switch typ, _ := flag.UnquoteUsage(f); typ {
	case "duration":
		return "a Go duration such as 500ms, 10s or 1m30s"
	case "int", "uint":
		return "an integer"
	case "float":
		return "a number"
	case "":
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return "true or false"
		}
	}
	return "a value as for --" + f.Name
}

// warnUnknownEnv warns about LEADCONV_* variables that no command reads:
// a misspelt name would otherwise be silently ignored. Variables of other
// commands are fine, as one environment file often serves several.
func warnUnknownEnv(e *env, fs *flagSet) {
	if e.environ == nil {
		return
	}
	known := knownEnv()
	var unknown []string
	for _, kv := range e.environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LEADCONV_") && !strings.HasPrefix(k, "LEADCONV_TEST_") && !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return
	}
	sort.Strings(unknown)
	format := ops.FormatAuto
	if f := fs.Lookup("log-format"); f != nil {
		format = f.Value.String()
	}
	log, err := ops.NewLogger(e.stderr, "warn", format)
	if err != nil {
		return // the command reports the bad format itself
	}
	for _, k := range unknown {
		ev := log.Warn().Str("variable", k)
		if s := closestEnv(k, known); s != "" {
			ev = ev.Str("did_you_mean", s)
		}
		ev.Msg("unknown LEADCONV_* environment variable: no command reads it, so it has no effect")
	}
}

// knownEnv is every variable some command reads.
func knownEnv() map[string]bool {
	known := map[string]bool{}
	for _, c := range commands() {
		fs := &flagSet{FlagSet: flag.NewFlagSet(c.name, flag.ContinueOnError), env: map[string][]string{}}
		c.setup(fs)
		for _, vars := range fs.env {
			for _, v := range vars {
				known[v] = true
			}
		}
	}
	return known
}

// closestEnv is the known variable nearest to k by edit distance, if near.
func closestEnv(k string, known map[string]bool) string {
	best, bestD := "", 3
	for v := range known {
		if d := editDistance(k, v); d < bestD || d == bestD && best != "" && v < best {
			best, bestD = v, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lookup treats an empty variable as unset, as shells and compose files
// often export empty values.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// osEnv is the real process environment.
func osEnv() *env {
	return &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, environ: os.Environ}
}
