package control

import (
	"github.com/bytedance/sonic"

	"github.com/tether-gw/tether/internal/wire"
)

// codec encodes and decodes the control port's JSON headers with sonic, which the
// gateway links anyway; services use wire.Std (encoding/json), so the SDK does not.
// The two must produce the same bytes (TestCodecsAgree). CopyString because decoded
// names (routes, rooms) outlive the frame buffer; SortMapKeys so that map results
// (presence) encode as encoding/json does, which also keeps logs and documentation
// examples stable.
var codec = wire.Codec{Marshal: sonicAPI.Marshal, Unmarshal: sonicAPI.Unmarshal}

var sonicAPI = sonic.Config{CopyString: true, ValidateString: true, SortMapKeys: true}.Froze()
