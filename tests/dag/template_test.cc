// `{{ name }}` templates: rendering and checking are pure functions, tested exhaustively.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dag/template.h"

namespace batchd::dag {
namespace {

using ::testing::IsEmpty;

const std::map<std::string, std::string> kVars = {
    {"dag", "billing"}, {"task", "extract"}, {"partition", "eu"}, {"ds", "2026-03-29"},
    {"logical_date", "2026-03-29T02:30:00+02:00"}, {"attempt", "2"}, {"params.region", "eu-west"}};

// "offset: message (hint)" for compact assertions.
std::vector<std::string> Check(std::string_view text, const std::vector<std::string>& params = {}) {
  std::vector<std::string> out;
  for (const TemplateError& e : CheckTemplate(text, params)) {
    out.push_back(std::to_string(e.offset) + ": " + e.message + (e.hint.empty() ? "" : " (" + e.hint + ")"));
  }
  return out;
}

TEST(TemplateTest, RendersVariablesWithOrWithoutSpaces) {
  EXPECT_EQ(RenderTemplate("{{ dag }}/{{task}}/{{  partition  }}/{{ds }}", kVars), "billing/extract/eu/2026-03-29");
  EXPECT_EQ(RenderTemplate("run {{ attempt }} of {{ params.region }}", kVars), "run 2 of eu-west");
}

TEST(TemplateTest, LeavesLiteralTextUnchanged) {
  EXPECT_EQ(RenderTemplate("", kVars), "");
  EXPECT_EQ(RenderTemplate("plain text", kVars), "plain text");
  EXPECT_EQ(RenderTemplate("awk '{ print $1 }' | sed 's/}}/x/'", kVars), "awk '{ print $1 }' | sed 's/}}/x/'");
  EXPECT_EQ(RenderTemplate("${HOME} { } {x} }} {", kVars), "${HOME} { } {x} }} {");
  EXPECT_EQ(RenderTemplate("multi\nline {{ ds }}\n", kVars), "multi\nline 2026-03-29\n");
  EXPECT_EQ(RenderTemplate("unicode é {{ dag }} ☕", kVars), "unicode é billing ☕");
}

TEST(TemplateTest, RendersAdjacentAndRepeatedVariables) {
  EXPECT_EQ(RenderTemplate("{{dag}}{{dag}}{{ task }}", kVars), "billingbillingextract");
  // The first `{{` opens and the first `}}` closes: the name is `{ dag`, unknown.
  EXPECT_EQ(RenderTemplate("{{{ dag }}}", kVars), "}");
}

TEST(TemplateTest, RendersUnknownVariablesAsEmpty) {
  EXPECT_EQ(RenderTemplate("a{{ nope }}b", kVars), "ab");
  EXPECT_EQ(RenderTemplate("a{{ params.missing }}b", kVars), "ab");
  EXPECT_EQ(RenderTemplate("a{{}}b", kVars), "ab");
}

TEST(TemplateTest, KeepsUnterminatedOpeningLiterally) {
  EXPECT_EQ(RenderTemplate("echo {{ ds }} {{ oops", kVars), "echo 2026-03-29 {{ oops");
  EXPECT_EQ(RenderTemplate("{{", kVars), "{{");
}

TEST(TemplateTest, AcceptsEveryDocumentedVariable) {
  for (const std::string& name : TemplateVariables()) {
    EXPECT_THAT(Check("{{ " + name + " }}"), IsEmpty()) << name;
  }
  EXPECT_EQ(TemplateVariables().size(), 10u);
}

TEST(TemplateTest, ReportsUnknownVariableWithOffsetAndSuggestion) {
  EXPECT_THAT(Check("echo {{ dss }}"), testing::ElementsAre("5: unknown template variable 'dss' (did you mean 'ds'?)"));
  EXPECT_THAT(Check("{{ logical-date }}"),
              testing::ElementsAre("0: unknown template variable 'logical-date' (did you mean 'logical_date'?)"));
  EXPECT_THAT(Check("{{ whatever }}"), testing::ElementsAre("0: unknown template variable 'whatever'"));
}

TEST(TemplateTest, AcceptsParamsOnlyWhenDeclared) {
  EXPECT_THAT(Check("{{ params.region }}", {"region"}), IsEmpty());
  EXPECT_THAT(Check("{{ params.region }}"), testing::ElementsAre("0: unknown template variable 'params.region'"));
  EXPECT_THAT(Check("{{ params.regoin }}", {"region"}),
              testing::ElementsAre("0: unknown template variable 'params.regoin' (did you mean 'params.region'?)"));
  EXPECT_THAT(Check("{{ params. }}", {"region"}), testing::ElementsAre("0: unknown template variable 'params.'"));
  EXPECT_THAT(Check("{{ region }}", {"region"}), testing::ElementsAre("0: unknown template variable 'region'"));
}

TEST(TemplateTest, ReportsUnterminatedAndEmptyVariables) {
  EXPECT_THAT(Check("a {{ ds"), testing::ElementsAre("2: unterminated '{{'"));
  EXPECT_THAT(Check("{{ ds }} {{"), testing::ElementsAre("9: unterminated '{{'"));
  EXPECT_THAT(Check("x {{ }}"), testing::ElementsAre("2: empty template variable '{{ }}'"));
}

TEST(TemplateTest, ReportsEveryProblemInOrder) {
  EXPECT_THAT(Check("{{ a }} {{ ds }} {{ b }} {{ c"),
              testing::ElementsAre("0: unknown template variable 'a'", "17: unknown template variable 'b'",
                                   "25: unterminated '{{'"));
}

TEST(TemplateTest, QuotesStrangeNamesSafely) {
  EXPECT_THAT(Check("{{ a\nb }}"), testing::ElementsAre("0: unknown template variable 'a\\nb'"));
}

TEST(TemplateTest, RestrictsVariablesToTheGivenSet) {
  EXPECT_THAT(CheckTemplate("{{ ds }} {{ params.p }}", {"p"}, RunTemplateVariables()), IsEmpty());
  std::vector<TemplateError> errors = CheckTemplate("{{ partition }}{{ nope }}", {}, RunTemplateVariables());
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].message, "template variable 'partition' is not available");
  EXPECT_EQ(errors[1].message, "unknown template variable 'nope'");
  EXPECT_EQ(errors[1].offset, 15u);
}

}  // namespace
}  // namespace batchd::dag
