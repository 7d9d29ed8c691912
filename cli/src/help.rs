//! `--help` texts: the overview and one per command. docs/CLI.md says the same at length.

pub const MAIN: &str = "\
crvm - command-line client for crvm-server (built on libcrvm's Rust core)

Usage: crvm COMMAND [ARGS] [FLAGS]      (global flags may also come before COMMAND)

Commands:
  login                              log in, print the user ID, log out
  status [--watch]                   every online user's status; --watch: then every change
  dnd on|off|N                       set do-not-disturb (N: any integer, 0 = off)
  call USER [--hangup-after SECS]    call USER; once accepted, stay until either side hangs up
  answer [--reject] [--from USER] [--hangup-after SECS]
                                     wait for a call, accept (or reject) it, stay until hung up
  send-cmd USER TEXT                 send TEXT (UTF-8) as a cmd
  send-file USER PATH [--no-progress]
                                     send a file; progress bar on stderr when it is a terminal
  receive [--dir DIR] [--count N]    save incoming files into DIR (default .); print cmds, buffers
  meetings [list]                    list the tenant's meetings
  meetings create SUBJECT [--password]
  meetings destroy ID
  help [COMMAND]                     this text, or one command's (also: crvm COMMAND --help)
  completions bash|zsh|fish          a shell completion script on stdout
  man                                the manual page (roff) on stdout

Global flags [environment variable]:
  --server HOST:PORT  [CRVM_SERVER]    server address (default 127.0.0.1:5210)
  --app-id ID         [CRVM_APP_ID]    tenant app ID (required)
  --secret SECRET     [CRVM_SECRET]    tenant secret, or
  --token TOKEN       [CRVM_TOKEN]     a user token (crvm-server token ...)
  --user USER         [CRVM_USER]      user ID (empty: the server picks one)
  --nickname NAME     [CRVM_NICKNAME]  nickname (default: the user ID)
  --tls                                speak TLS to the server
  --tls-ca FILE       [CRVM_TLS_CA]    trust these CA certificates (PEM); implies --tls
  --json                               one JSON object per line on stdout
  --timeout SECS                       exit 4 unless the command has reached its goal by then
  -h, --help   -V, --version

Exit codes:
  0    success (including a call or watch ended by Ctrl-C once under way)
  1    the operation failed with a crvm error code, printed with its text
  2    usage error (bad flags or arguments)
  3    could not connect, or the session ended (link lost, server shut down, kicked):
       codes 200 201 203 204 206 207 209 and any line_off
  4    timed out: --timeout passed, or the server did not answer (202, 205)
  130  interrupted by SIGINT before the goal was reached (143: SIGTERM)
  141  standard output was closed

See docs/CLI.md for output formats and examples.";

pub fn command(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "login" => {
            "\
Usage: crvm login

Logs in, prints the user ID (human: `logged in as USER`; JSON: {\"event\":\"logged_in\",
\"user\":USER}), logs out. Use it to check credentials: wrong app ID or secret exits 1 with
code 7, an unreachable server exits 3 with code 203."
        }
        "status" => {
            "\
Usage: crvm status [--watch]

Prints the status of every online user of the tenant, one per line (human: `alice: online,
dnd off`; JSON: {\"event\":\"status\",\"userID\":..,\"userStatus\":..,\"DNDType\":..}).
With --watch, then prints `ready` ({\"event\":\"ready\",...}) and every change as it happens
(JSON event \"status_changed\") until Ctrl-C or SIGTERM (exit 0) or the link drops (exit 3)."
        }
        "dnd" => {
            "\
Usage: crvm dnd on|off|N

Sets do-not-disturb: on = 1, off = 0, or any integer N (0 = off). While it is on, calls to you
are refused with 602."
        }
        "call" => {
            "\
Usage: crvm call USER [--hangup-after SECS]

Calls USER and waits for the answer. Accepted: prints `connected`, then stays until USER hangs
up, Ctrl-C (which hangs up) or --hangup-after SECS; all exit 0. Refused (606), no answer (604),
busy or DND (602), offline (603): exit 1 with the code. Ctrl-C while ringing cancels the call
(exit 130); --timeout while ringing cancels it too (exit 4)."
        }
        "answer" => {
            "\
Usage: crvm answer [--reject] [--from USER] [--hangup-after SECS]

Prints `ready`, waits for an incoming call and accepts it (or, with --reject, rejects it and
exits 0). With --from USER, calls from anyone else are rejected and waiting goes on. Once
connected, stays until the caller hangs up, Ctrl-C (which hangs up) or --hangup-after SECS;
all exit 0. --timeout bounds the wait for the call (exit 4)."
        }
        "send-cmd" => {
            "\
Usage: crvm send-cmd USER TEXT

Sends TEXT (as UTF-8, at most 51,200 bytes) as a cmd and waits until USER's library has it.
USER offline: exit 1 with 1102."
        }
        "send-file" => {
            "\
Usage: crvm send-file USER PATH [--no-progress]

Streams the file to USER (who runs `crvm receive`). When stderr is a terminal a progress bar
shows bytes sent, total, rate and ETA (--no-progress hides it). With --json, progress goes to
stdout as {\"event\":\"progress\",...} lines (at most 4 a second, and the last one), then
{\"event\":\"sent\",...}. Ctrl-C cancels the transfer (exit 130). USER offline: exit 1 with
1102; missing file: 1400."
        }
        "receive" => {
            "\
Usage: crvm receive [--dir DIR] [--count N]

Saves incoming files into DIR (created if missing; default: the current directory) under their
original names (never overwriting: `name (1).ext`), and prints each file, cmd and buffer as it
arrives. Prints `ready` once logged in. With --count N exits 0 after N files (--timeout bounds
the wait: exit 4; Ctrl-C: 130); without it, runs until Ctrl-C or SIGTERM (exit 0)."
        }
        "meetings" => {
            "\
Usage: crvm meetings [list]
       crvm meetings create SUBJECT [--password]
       crvm meetings destroy ID

Lists the tenant's meetings (JSON: one {\"event\":\"meeting\",...} per meeting with the pinned
keys ID, pswd, subject, pubMeetUrl, creator, memberCount, startTime), creates one (with
--password the server picks a 6-digit password), or destroys one of yours (else exit 1, 800)."
        }
        _ => return None,
    })
}
