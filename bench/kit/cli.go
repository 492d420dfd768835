package kit

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Command is one subcommand of a tool: "run", "serve", "load", ...
type Command struct {
	Name string
	// Run runs the subcommand with the arguments after its name.
	Run func(args []string) error
}

// Main runs the subcommand args[0] of the tool prog and returns the exit status: 2
// for a missing or unknown subcommand (usage goes to stderr), 0 for help or success,
// 1 for an error, which is printed as "prog sub: error".
func Main(prog, usage string, cmds []Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	for _, c := range cmds {
		if c.Name != args[0] {
			continue
		}
		err := c.Run(args[1:])
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s %s: %v\n", prog, args[0], err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", prog, args[0], usage)
	return 2
}

// FlagSet returns a flag set for subcommand name of prog that reports errors (and
// -h) on stderr and returns them instead of exiting.
func FlagSet(prog, name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// WriteJSON writes v as indented JSON to path; "-" means stdout.
func WriteJSON(path string, v any, stdout io.Writer) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode JSON: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
	} else {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("cannot write JSON: %w", err)
	}
	return nil
}

// Parse parses a subcommand's flags and refuses positional arguments, which no
// subcommand of these tools takes.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// SubCommand returns subcommand name of prog: it binds its flags to a C with bind,
// parses them (see Parse) and calls run with the result.
func SubCommand[C any](prog, name string, stderr io.Writer, bind func(*flag.FlagSet, *C), run func(C) error) Command {
	return Command{Name: name, Run: func(args []string) error {
		fs := FlagSet(prog, name, stderr)
		var cfg C
		bind(fs, &cfg)
		if err := Parse(fs, args); err != nil {
			return err
		}
		return run(cfg)
	}}
}
