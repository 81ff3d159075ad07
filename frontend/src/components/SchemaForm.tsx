import { useMemo, type ReactNode } from 'react';
import { Text } from '@mantine/core';
import Form from '@rjsf/mantine';
import validator from '@rjsf/validator-ajv8';
import type { ErrorSchema, FieldErrorProps, RJSFSchema, UiSchema } from '@rjsf/utils';
import { errorId } from '@rjsf/utils';
import { simplifyNullable } from '../lib/schema';

/** Errors at a field, visible (the Mantine theme hides its own template), with a test id. */
function FieldErrorTemplate({ errors, fieldPathId }: FieldErrorProps) {
  if (!errors?.length) return null;
  return (
    <div id={errorId(fieldPathId)} data-testid="field-error" data-field={fieldPathId.$id}>
      {errors.map((e, i) => (
        <Text key={i} c="red" size="xs">
          {e}
        </Text>
      ))}
    </div>
  );
}

export interface SchemaFormProps {
  schema: Record<string, unknown>;
  formData: unknown;
  onChange: (data: unknown) => void;
  onSubmit?: (data: unknown) => void;
  extraErrors?: ErrorSchema;
  uiSchema?: UiSchema;
  children?: ReactNode;
  disabled?: boolean;
}

/** A JSON Schema rendered as a Mantine form (react-jsonschema-form); server errors come in as `extraErrors`. */
export function SchemaForm({ schema, formData, onChange, onSubmit, extraErrors, uiSchema, children, disabled }: SchemaFormProps) {
  const simple = useMemo(() => simplifyNullable(schema) as RJSFSchema, [schema]);
  return (
    <div className="tl-rjsf" data-testid="schema-form">
      <Form
        schema={simple}
        uiSchema={{ 'ui:submitButtonOptions': { norender: true }, ...uiSchema }}
        validator={validator}
        formData={formData}
        onChange={(e) => onChange(e.formData)}
        onSubmit={(e) => onSubmit?.(e.formData)}
        extraErrors={extraErrors}
        showErrorList={false}
        templates={{ FieldErrorTemplate }}
        disabled={disabled}
        noHtml5Validate
      >
        {children ?? <></>}
      </Form>
    </div>
  );
}
