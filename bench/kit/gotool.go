package kit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// GoTool returns the go command: the one on PATH, else the one this binary was built
// with.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// BuildTetherd builds cmd/tetherd into dir with go build, which needs the working
// directory inside the tether module, and returns the binary's path.
func BuildTetherd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "tetherd")
	out, err := exec.CommandContext(ctx, GoTool(), "build", "-o", bin, "github.com/tether-gw/tether/cmd/tetherd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cannot build tetherd: %w: %s", err, out)
	}
	return bin, nil
}

// PprofTop writes header and then `go tool pprof -top <args> profile` to path.
func PprofTop(profile, path, header string, args ...string) error {
	cmd := append(append([]string{"tool", "pprof", "-top"}, args...), profile)
	out, err := exec.Command(GoTool(), cmd...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cannot run go tool pprof on %s: %w: %s", profile, err, out)
	}
	if err := os.WriteFile(path, append([]byte(header), out...), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
