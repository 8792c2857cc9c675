# Fits a line to one region's data: the R half of a mixed-technology pipeline.
args <- commandArgs(trailingOnly = TRUE)
data <- kaon_input("data")
region <- kaon_input("region")
params <- kaon_params()
fit <- lm(y ~ x, data = data)
kaon_progress(0.5, "fitted")
kaon_metric("r_squared", summary(fit)$r.squared)
kaon_metric("rows", nrow(data), 1)
kaon_output("model", list(region = region, slope = unname(coef(fit)[["x"]]),
                          scale = params$scale, args = args))
kaon_output("residuals", data.frame(x = data$x, residual = unname(residuals(fit))))
cat("fitted", region, "\n")
message("a note on stderr")
