package io.mlkv.cli;

import io.mlkv.storage.MlkvException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import picocli.CommandLine;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * How every MLKV command reports a user's mistake: one line on standard error naming the command
 * and what is wrong, and exit code {@value #USAGE}; never a stack trace. This covers picocli's own
 * parameter errors (an unknown option, a value that does not convert, with its suggestions on the
 * same line), {@link ParameterException}s a command throws after checking its options, and, from
 * a command's run, the project's exceptions and those a user's input causes:
 * {@link MlkvException} (a locked or damaged store, a full disk), {@link IllegalArgumentException}
 * and {@link IllegalStateException} (a setting the store's builder refuses, a GPU asked for where
 * there is none) and I/O errors (a missing file, a port in use). Anything else is a bug: it keeps
 * its stack trace and exit code 1. Enum options accept any case.
 */
public final class Cli {
    /** Exit code of a usage mistake. */
    public static final int USAGE = 2;

    private Cli() {
    }

    /** The command line for {@code command}, configured as described above. */
    public static CommandLine commandLine(Object command) {
        CommandLine cl = new CommandLine(command);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setParameterExceptionHandler(Cli::parameterError);
        cl.setExecutionExceptionHandler((e, line, parsed) -> {
            String message = userError(e);
            if (message == null) {
                throw e;
            }
            line.getErr().println(line.getCommandSpec().qualifiedName() + ": " + message);
            line.getErr().flush();
            return USAGE;
        });
        return cl;
    }

    /** Parses and runs {@code args}; returns the exit code. */
    public static int execute(Object command, String... args) {
        return commandLine(command).execute(args);
    }

    private static int parameterError(ParameterException e, String[] args) {
        CommandLine line = e.getCommandLine();
        PrintWriter err = line.getErr();
        StringBuilder sb = new StringBuilder(line.getCommandSpec().qualifiedName()).append(": ")
                .append(oneLine(e.getMessage()));
        if (e instanceof UnmatchedArgumentException u && !u.getSuggestions().isEmpty()) {
            sb.append("; did you mean ").append(String.join(" or ", u.getSuggestions())).append('?');
        }
        sb.append(" (see '").append(line.getCommandSpec().qualifiedName()).append(" --help')");
        err.println(sb);
        err.flush();
        return USAGE;
    }

    /** The one-line message for an exception a user's input causes, or null for a bug. */
    static String userError(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof MlkvException || t instanceof IllegalArgumentException || t instanceof IllegalStateException) {
                return oneLine(t.getMessage());
            }
            if (t instanceof UncheckedIOException u) {
                String context = u.getMessage();
                String cause = ioMessage(u.getCause());
                return context == null || context.equals(u.getCause().toString()) ? cause : oneLine(context) + ": " + cause;
            }
            if (t instanceof IOException io) {
                return ioMessage(io);
            }
        }
        return null;
    }

    private static String ioMessage(IOException e) {
        String m = oneLine(e.getMessage());
        if (e instanceof NoSuchFileException) {
            return "no such file or directory: " + m;
        }
        if (e instanceof AccessDeniedException) {
            return "permission denied: " + m;
        }
        if (e instanceof FileAlreadyExistsException) {
            return "already exists: " + m;
        }
        if (e instanceof NotDirectoryException) {
            return "not a directory: " + m;
        }
        if (e instanceof BindException) {
            return "cannot listen: " + m;
        }
        return e.getClass().getSimpleName() + ": " + m;
    }

    private static String oneLine(String message) {
        if (message == null) {
            return "(no message)";
        }
        return message.replaceAll("\\s*\\R\\s*", " ").trim();
    }
}
