# Regenerates the corpus text files of this folder from the Debian package
# r-cran-janeaustenr (1.0.0-1), which ships Jane Austen's novels as R character
# vectors of hard-wrapped lines taken from Project Gutenberg without its header,
# footer or license text. See SOURCE.md for the provenance and the license.
#
#   apt-get install r-cran-janeaustenr
#   Rscript llm/assets/corpus/prepare.R llm/assets/corpus
#
# Normalisation (the words and punctuation are left exactly as shipped):
#   * trailing whitespace is removed and leading whitespace (centring) too;
#   * the lines of a paragraph are joined into one line, with one space between
#     them, or none after a line ending in "--" (the dash never takes a space
#     after it in these texts), and runs of spaces become one space;
#   * paragraphs (headings included) are separated by exactly one blank line;
#   * the file is UTF-8 with "\n" newlines and ends with one "\n".

args <- commandArgs(trailingOnly = TRUE)
out_dir <- if (length(args) >= 1) args[[1]] else "."

books <- c(
  prideprejudice = "pride-and-prejudice.txt",
  persuasion = "persuasion.txt"
)

normalise <- function(lines) {
  lines <- enc2utf8(lines)
  lines <- sub("[[:space:]]+$", "", sub("^[[:space:]]+", "", lines))
  paragraphs <- character()
  current <- ""
  for (line in c(lines, "")) {
    if (line == "") {
      if (current != "") {
        paragraphs <- c(paragraphs, gsub(" {2,}", " ", current))
        current <- ""
      }
    } else if (current == "") {
      current <- line
    } else if (endsWith(current, "--")) {
      current <- paste0(current, line)
    } else {
      current <- paste(current, line)
    }
  }
  paste0(paste(paragraphs, collapse = "\n\n"), "\n")
}

for (name in names(books)) {
  data_env <- new.env()
  utils::data(list = name, package = "janeaustenr", envir = data_env)
  lines <- get(name, envir = data_env)
  text <- normalise(lines)
  path <- file.path(out_dir, books[[name]])
  con <- file(path, open = "wb")
  writeBin(charToRaw(enc2utf8(text)), con)
  close(con)
  cat(sprintf("%s: %d lines in, %d bytes out\n", path, length(lines), nchar(text, type = "bytes")))
}
